// masks.safetensors (job_runner.h): one packed-bit mask per target (uint8, little-endian bit
// order, PackMaskBits), the full shapes in the metadata. Written streamed: the masks come one at a
// time from `mask_of`, so the writer never needs them all at once (with row-sharded masks rank 0
// gathers each just before it is written, row_sharded_publish.h).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/nm_pattern.h"

namespace ps {

// Writes `file` atomically. `shapes`: every target's full mask shape by parameter name (the file
// holds them in this, name, order); `mask_of(name)`: that target's whole bool mask, called once
// per name in order, right before it is packed (it and its packed bits are released before the
// next). ps::Error when a mask's shape differs from `shapes`.
void WriteMasksFile(const std::filesystem::path& file,
                    const std::map<std::string, std::vector<int64_t>>& shapes,
                    const std::function<torch::Tensor(const std::string&)>& mask_of,
                    const NMPattern& pattern, const std::string& base_model_sha256);

}  // namespace ps

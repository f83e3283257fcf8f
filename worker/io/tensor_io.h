// LibTorch views of safetensors data: zero-copy tensors over the memory map (read-only by
// contract), and writing named tensors back out.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/safetensors.h"

namespace ps {

torch::ScalarType ToTorch(DType t);
DType FromTorch(torch::ScalarType t);

// A tensor that aliases the mapped bytes (no copy). Keep `file` alive while it is used and never
// write to it (the mapping is private copy-on-write, so writes would not reach the file, but they
// are a bug all the same). Use .to(dtype) or .clone() for an owned copy.
torch::Tensor TensorView(const SafetensorsFile& file, const TensorInfo& info);
torch::Tensor TensorView(const Checkpoint& ckpt, std::string_view name);

// Writes CPU tensors (made contiguous) to a safetensors file, atomically, in the given order.
void SaveTensors(const std::filesystem::path& path,
                 const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                 const std::map<std::string, std::string>& metadata = {});

}  // namespace ps

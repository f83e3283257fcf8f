// Publishing a pruned model as a Hugging Face directory that transformers loads unchanged: every
// tensor of the original checkpoint is copied bit for bit except the ones a method replaces (the
// targets: W0 ⊙ mask for frozen-weight methods, updated weights for SparseGPT/masked update).
// config.json and the tokenizer files are copied. Shards of at most `max_shard_bytes` are written
// one at a time and each tensor by itself: a replacement exists only while its bytes are written
// and each original's mapped pages are dropped after it is read, so publishing holds about one
// tensor whatever the model's size (`model.safetensors.index.json` when there are several shards).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

namespace ps {

// Given a tensor name and the original tensor (a read-only view of the mapped file), returns the
// tensor to publish, or nullopt to keep the original bytes. Called once per tensor, in the order
// they are written; the result is released before the next call.
using TensorReplacer = std::function<std::optional<torch::Tensor>(const std::string& name,
                                                                  const torch::Tensor& original)>;

struct PublishStats {
  int64_t tensors = 0;
  int64_t replaced = 0;
  uint64_t bytes = 0;
};

PublishStats WritePrunedModel(const std::filesystem::path& original_dir,
                              const std::filesystem::path& out_dir, const TensorReplacer& replace,
                              uint64_t max_shard_bytes = 4'000'000'000ULL);

// The files besides weights that a model directory carries (config, tokenizer, generation).
void CopyModelSideFiles(const std::filesystem::path& from, const std::filesystem::path& to);

}  // namespace ps

// Loading and saving Llama-family models as Hugging Face directories: config.json plus
// model.safetensors or shards listed by model.safetensors.index.json.
//
// Loading memory-maps the files and copies tensor by tensor into parameters allocated only as they
// are read (DeferParameterAllocation), converting dtype on the way; each slice's mapped pages are
// released right after its copy (worker/io/tensor_rows.h), so the peak resident memory is the
// model itself plus about 16 MB.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "common/job_choices.h"
#include "common/safetensors.h"
#include "worker/models/llama_model.h"

namespace ps {

struct LoadOptions {
  torch::ScalarType dtype = torch::kFloat32;  // compute dtype of the loaded model
  torch::Device device = torch::kCPU;
};

// Names parameters (by HF name) that the caller fills itself: checked against the checkpoint like
// the others, but left 0-element and never allocated (a loader reading only part of a tensor).
using LeaveEmpty = std::function<bool(const std::string& name)>;

// Loads DIR/config.json and the weights. ps::Error (naming the file and tensor) on an unsupported
// architecture, a missing or unexpected tensor, a shape that does not match the config, a
// non-floating tensor, or an unreadable file.
std::shared_ptr<LlamaForCausalLM> LoadLlama(const std::filesystem::path& dir,
                                            const LoadOptions& options = {},
                                            const LeaveEmpty& leave_empty = {});

// Copies every parameter of `model` from an open checkpoint (same checks as LoadLlama); a
// 0-element (deferred) parameter gets its storage here, unless `leave_empty` names it.
void LoadLlamaWeights(LlamaForCausalLM& model, const Checkpoint& ckpt,
                      const LeaveEmpty& leave_empty = {});

// Parses a compute dtype name: fp32|float32, bf16|bfloat16, fp16|float16.
torch::ScalarType ParseComputeDType(const std::string& name);
// The job file's compute dtype as a torch dtype.
torch::ScalarType ToScalarType(ComputeDType dtype);
// transformers' name for a dtype ("float32", "bfloat16", "float16").
std::string HfDTypeName(torch::ScalarType t);

struct SaveOptions {
  // Storage dtype; default: the model's dtype.
  std::optional<torch::ScalarType> dtype;
  // Tokenizer and generation files (tokenizer.model, tokenizer.json, tokenizer_config.json, ...)
  // found here are copied next to the weights.
  std::optional<std::filesystem::path> copy_files_from;
  // Above this many bytes the weights are split into model-0000k-of-0000n.safetensors + index.
  uint64_t max_shard_bytes = 5'000'000'000ULL;
};

// Writes DIR/config.json + the weights (atomically per file) in a layout transformers loads.
void SaveLlama(LlamaForCausalLM& model, const std::filesystem::path& dir,
               const SaveOptions& options = {});

}  // namespace ps

// Flags shared by the model-running pstool commands (eval, generate, logits): --model, --device,
// --dtype, --threads, and loading the model + tokenizer they name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "worker/models/llama_checkpoint.h"
#include "worker/tokenizers/tokenizer.h"

namespace CLI {
class App;
}

namespace ps {

// True for a compressed-tensors (sparsity_config in config.json) or native 2:4 directory.
bool IsPackedArtifact(const std::filesystem::path& dir);

struct ModelArgs {
  std::string model;
  std::string device = "cpu";
  std::string dtype = "fp32";
  int threads = 0;  // 0: LibTorch's default (one per core)

  // Declares --model (required), --device, --dtype, --threads on a pstool command.
  void Add(CLI::App& app);
  // Applies --threads, checks --device, loads the model. A 2:4 artifact directory
  // (compressed-tensors sparse-24-bitmask or native, docs/artifacts.md) is unpacked first.
  std::shared_ptr<LlamaForCausalLM> Load() const;
};

}  // namespace ps

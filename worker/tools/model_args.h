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

struct ModelArgs {
  std::string model;
  std::string device = "cpu";
  std::string dtype = "fp32";
  int threads = 0;  // 0: LibTorch's default (one per core)

  // Declares --model (required), --device, --dtype, --threads on a pstool command.
  void Add(CLI::App& app);
  // Applies --threads, checks --device, loads the model.
  std::shared_ptr<LlamaForCausalLM> Load() const;
};

}  // namespace ps

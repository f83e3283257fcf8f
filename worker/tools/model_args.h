// Flags shared by the model-running pstool commands (eval, generate, logits): --model, --device,
// --dtype, --threads, and loading the model + tokenizer they name.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "worker/models/llama_checkpoint.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {

struct ModelArgs {
  std::string model;
  std::string device = "cpu";
  std::string dtype = "fp32";
  int threads = 0;  // 0: LibTorch's default (one per core)

  // Consumes args[i] (and its value) if it is one of the shared flags; returns false otherwise.
  bool Parse(const std::vector<std::string>& args, size_t& i);
  static const char* Help();
  // Applies --threads, checks --device, loads the model.
  std::shared_ptr<LlamaForCausalLM> Load() const;
};

// The value following args[i] (advancing i), or a ps::Error naming the flag.
std::string FlagValue(const std::vector<std::string>& args, size_t& i);

}  // namespace ps

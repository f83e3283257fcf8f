// Test fixture: a tiny random-weight Llama (GQA) saved as a Hugging Face directory, with the
// default model's SentencePiece tokenizer (vocabulary 8192) so that real text tokenizes.
#pragma once

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/models/llama_config.h"
#include "worker/models/llama_model.h"

namespace ps::testing {

inline std::filesystem::path SharedData() { return PS_SHARED_DATA; }

inline void WriteTinyModel(const std::filesystem::path& dir, int64_t layers = 2, uint64_t seed = 1) {
  std::filesystem::create_directories(dir);
  nlohmann::json cfg = {{"architectures", {"LlamaForCausalLM"}},
                        {"model_type", "llama"},
                        {"vocab_size", 8192},
                        {"hidden_size", 64},
                        {"intermediate_size", 128},
                        {"num_hidden_layers", layers},
                        {"num_attention_heads", 4},
                        {"num_key_value_heads", 2},
                        {"max_position_embeddings", 512},
                        {"rms_norm_eps", 1e-5},
                        {"rope_theta", 10000.0},
                        {"tie_word_embeddings", false},
                        {"bos_token_id", 1},
                        {"eos_token_id", 2},
                        {"torch_dtype", "float32"}};
  LlamaForCausalLM model(ParseLlamaConfig(cfg), torch::dtype(torch::kFloat32));
  torch::manual_seed(seed);
  torch::NoGradGuard no_grad;
  for (auto& p : model.named_parameters()) {
    if (p.key().find("norm") != std::string::npos) p.value().fill_(1.0);
    else p.value().normal_(0.0, 0.05);
  }
  SaveOptions o;
  o.copy_files_from = SharedData() / "codelm-19m";
  SaveLlama(model, dir, o);
  // Keep only the tokenizer from the real model's side files, with the tiny config.
  WriteFileAtomic(dir / "config.json", cfg.dump(2));
}

// A few hundred lines of Python-like text as JSON lines.
inline void WriteCalibration(const std::filesystem::path& file, int docs = 12) {
  std::string out;
  for (int d = 0; d < docs; ++d) {
    std::string text;
    for (int i = 0; i < 40; ++i)
      text += "def f" + std::to_string(d) + "_" + std::to_string(i) + "(x, y):\n    return x * " +
              std::to_string(i) + " + y\n\n";
    out += nlohmann::json{{"text", text}}.dump() + "\n";
  }
  WriteFileAtomic(file, out);
}

}  // namespace ps::testing

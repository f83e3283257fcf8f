#include "worker/sparse/random_model.h"

#include <torch/nn/module.h>

#include "common/error.h"
#include "worker/models/llama_config.h"
#include "worker/sparse/native_pack.h"

namespace ps::sparse {

nlohmann::json NamedShapeConfig(const std::string& name, int64_t layers) {
  if (name != "llama2-7b") throw Error("unknown model shape '" + name + "' (known: llama2-7b)");
  if (layers == 0 || layers > 32) throw Error("llama2-7b has 1..32 layers");
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"vocab_size", 32000},
          {"hidden_size", 4096},
          {"intermediate_size", 11008},
          {"num_hidden_layers", layers < 0 ? 32 : layers},
          {"num_attention_heads", 32},
          {"num_key_value_heads", 32},
          {"max_position_embeddings", 4096},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"tie_word_embeddings", false},
          {"torch_dtype", "bfloat16"}};
}

std::shared_ptr<LlamaForCausalLM> RandomSparseModel(const nlohmann::json& config,
                                                    const torch::TensorOptions& options,
                                                    uint64_t seed) {
  auto model = std::make_shared<LlamaForCausalLM>(ParseLlamaConfig(config, "model shape"), options);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& p : model->named_parameters()) {
    auto& t = p.value();
    if (t.dim() == 1 && p.key().find("norm") != std::string::npos) {
      t.fill_(1.0);
    } else {
      t.normal_(0.0, 0.02);
    }
  }
  for (const auto& l : model->TargetLinears()) l->weight.copy_(PruneTwoFour(l->weight));
  return model;
}

}  // namespace ps::sparse

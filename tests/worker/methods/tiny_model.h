// A tiny random Llama (2 layers, GQA) for the methods' tests, built with the model API.
#pragma once

#include <torch/types.h>

#include <memory>
#include <vector>

#include "worker/models/llama_model.h"

namespace ps::testing {

inline LlamaConfig TinyConfig() {
  LlamaConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  return c;
}

// Random weights, a pure function of `seed` (norm weights near 1, the rest N(0, 0.3²)).
inline std::shared_ptr<LlamaForCausalLM> TinyModel(uint64_t seed,
                                                   torch::ScalarType dtype = torch::kFloat64) {
  auto model =
      std::make_shared<LlamaForCausalLM>(TinyConfig(), torch::TensorOptions().dtype(dtype));
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& kv : model->named_parameters()) {
    if (kv.key().find("norm") != std::string::npos) {
      kv.value().copy_(1.0 + 0.1 * torch::randn(kv.value().sizes(), torch::kFloat64));
    } else {
      kv.value().copy_(0.3 * torch::randn(kv.value().sizes(), torch::kFloat64));
    }
  }
  return model;
}

inline std::vector<std::vector<int32_t>> TinySamples(int n, int len, uint64_t seed) {
  torch::manual_seed(seed);
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i) {
    auto t = torch::randint(0, TinyConfig().vocab_size, {len + i % 3}, torch::kInt32);
    out.emplace_back(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + t.numel());
  }
  return out;
}

}  // namespace ps::testing

// Test fixtures shared by the model, eval, methods and engine tests: small random-weight
// Llama-family models (in memory or written as HF directories) and token samples for them.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "worker/models/llama_model.h"

namespace ps::testing {

// kind: "llama" (MHA, untied), "mistral" (GQA), "qwen2" (q/k/v biases, tied embeddings),
// "llama3" (GQA + llama3 rope scaling, transformers-5 spelling). All: 2 layers, hidden 32.
nlohmann::json TinyConfig(const std::string& kind);

// A model with the given config and random weights: N(0, std²), norms 1 + N(0, 0.1²). A pure
// function of `seed` (a private generator; the global one is left alone).
std::shared_ptr<LlamaForCausalLM> RandomModel(const nlohmann::json& config, uint64_t seed,
                                              torch::ScalarType dtype = torch::kFloat32,
                                              double std = 0.1);

// The pruning methods' model: TinyConfig("mistral") with weights N(0, 0.3²) (large enough that
// masks matter), fp64 by default for comparisons against the slow references.
std::shared_ptr<LlamaForCausalLM> TinyModel(uint64_t seed,
                                            torch::ScalarType dtype = torch::kFloat64);
int64_t TinyVocab();  // TinyModel's vocabulary size

// `n` sequences of token ids below TinyVocab(), of lengths len, len+1, len+2, len, ...
std::vector<std::vector<int32_t>> TinySamples(int n, int len, uint64_t seed);

// Mean next-token cross-entropy of `model` on ids [batch, len].
torch::Tensor NextTokenLoss(LlamaForCausalLM& model, const torch::Tensor& ids);

// A fresh empty directory under the test temp dir.
std::filesystem::path TempDir(const std::string& name);

}  // namespace ps::testing

// Test fixtures: small random-weight Llama-family checkpoints written as HF directories.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "worker/models/llama_model.h"

namespace ps::testing {

// kind: "llama" (MHA, untied), "mistral" (GQA), "qwen2" (q/k/v biases, tied embeddings),
// "llama3" (GQA + llama3 rope scaling, transformers-5 spelling).
nlohmann::json TinyConfig(const std::string& kind);

// A model with the given config and random weights (normal * 0.1, norms around 1).
std::shared_ptr<LlamaForCausalLM> RandomModel(const nlohmann::json& config, uint64_t seed,
                                              torch::ScalarType dtype = torch::kFloat32);

// A fresh empty directory under the test temp dir.
std::filesystem::path TempDir(const std::string& name);

}  // namespace ps::testing

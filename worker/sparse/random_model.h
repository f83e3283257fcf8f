// Random 2:4 Llama-family models for benches and GPU checks where no real pruned checkpoint of
// the wanted size exists (e.g. the Llama-2-7B shape): N(0, 0.02²) weights, magnitude-pruned 2:4
// on every q/k/v/o/gate/up/down target, norms at 1.
#pragma once

#include <torch/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "worker/models/llama_model.h"

namespace ps::sparse {

// config.json of a named shape: "llama2-7b" (layers: all 32 when < 0). ps::Error when unknown.
nlohmann::json NamedShapeConfig(const std::string& name, int64_t layers = -1);

// A model of `config` with random weights made directly on `options`' device and dtype.
std::shared_ptr<LlamaForCausalLM> RandomSparseModel(const nlohmann::json& config,
                                                    const torch::TensorOptions& options,
                                                    uint64_t seed);

}  // namespace ps::sparse

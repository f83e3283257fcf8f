// Greedy decoding with a KV cache.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "worker/models/llama_model.h"

namespace ps {

// Continues `prompt` (already tokenized, BOS included if wanted) by up to `max_new` tokens,
// always taking the most likely next token; stops after `eos` if given. Returns only the new ids.
std::vector<int32_t> GreedyGenerate(LlamaForCausalLM& model, const std::vector<int32_t>& prompt,
                                    int64_t max_new, std::optional<int32_t> eos = std::nullopt);

}  // namespace ps

// The model side of the server: prefill of one new request into its KV slot, and one decode step
// for a batch of running requests at once (each at its own position), so every linear layer
// runs with M = batch rows (the 2:4 decode kernels' batched case on the GPU).
//
// Exactness: prefill is the model's own forward. A decode step computes the same operations as
// the model's cached forward (same RoPE tables, same attention function), row-batched for the
// linears; with `exact_attention` each sequence's attention runs on its own keys alone, so a
// request decoded alone gives bit for bit the tokens of `GreedyGenerate` (`pstool generate`).
// Without it (the GPU default) attention runs once for the whole batch over the longest
// sequence's keys with a mask.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "worker/models/llama_model.h"
#include "worker/models/rope.h"
#include "worker/serve/kv_cache.h"

namespace ps::serve {

struct EngineOptions {
  int64_t max_batch = 8;   // KV slots: requests decoded together at most
  int64_t max_len = 2048;  // positions per request (prompt + generated)
  bool exact_attention = true;
};

class Engine {
 public:
  Engine(std::shared_ptr<LlamaForCausalLM> model, const EngineOptions& options);

  LlamaForCausalLM& model() { return *model_; }
  KvCachePool& kv() { return kv_; }
  int64_t max_len() const { return kv_.max_len(); }

  // Runs `ids` (1 <= size < max_len) through the model into `slot` (whose length becomes
  // ids.size()); returns the logits of the last position, [vocab] fp32 on the CPU.
  torch::Tensor Prefill(int slot, const std::vector<int32_t>& ids);
  // Appends tokens[i] to slots[i] (distinct, each with room left) and returns the logits of
  // each new position, [n, vocab] fp32 on the CPU.
  torch::Tensor Decode(const std::vector<int>& slots, const std::vector<int32_t>& tokens);

 private:
  torch::Tensor Attend(int64_t layer, const torch::Tensor& q, const std::vector<int>& slots,
                       const std::vector<int64_t>& positions);

  std::shared_ptr<LlamaForCausalLM> model_;
  EngineOptions options_;
  KvCachePool kv_;
  // Batched mode: RoPE tables of every position, on the model's device, gathered per step
  // (exact mode computes each position's tables as the model does).
  RopeTables rope_all_;
};

}  // namespace ps::serve

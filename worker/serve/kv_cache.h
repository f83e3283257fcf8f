// The KV cache of the server: one contiguous, preallocated block per layer holding `slots`
// sequences of up to `max_len` positions ([slots, kv_heads, max_len, head_dim] for keys and for
// values). A request owns one slot from admission to completion; its keys live at positions
// 0..length-1 of its slot, so nothing is copied as it grows (unlike the model's torch::cat cache).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "worker/models/llama_config.h"

namespace ps::serve {

class KvCachePool {
 public:
  // `scratch`: one more slot after the `slots` requests can own (index slots()), never handed out:
  // where the fixed-shape decode step writes the keys of its padding rows.
  KvCachePool(const LlamaConfig& config, int64_t slots, int64_t max_len,
              const torch::TensorOptions& options, bool scratch = false);

  int64_t slots() const { return slots_; }
  int64_t max_len() const { return max_len_; }
  // A free slot (its length reset to 0), or nullopt when all are taken.
  std::optional<int> Acquire();
  void Release(int slot);
  int64_t length(int slot) const { return lengths_.at(static_cast<size_t>(slot)); }
  void set_length(int slot, int64_t n) { lengths_.at(static_cast<size_t>(slot)) = n; }
  // Positions in use over all slots, and the capacity (slots * max_len): the KV use metrics.
  int64_t used_tokens() const;
  int64_t capacity_tokens() const { return slots_ * max_len_; }
  int64_t bytes() const;

  torch::Tensor& k(int64_t layer) { return k_.at(static_cast<size_t>(layer)); }
  torch::Tensor& v(int64_t layer) { return v_.at(static_cast<size_t>(layer)); }

 private:
  int64_t slots_, max_len_;
  std::vector<torch::Tensor> k_, v_;
  std::vector<int64_t> lengths_;
  std::vector<bool> taken_;
};

}  // namespace ps::serve

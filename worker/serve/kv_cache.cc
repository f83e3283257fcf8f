#include "worker/serve/kv_cache.h"

#include "common/error.h"

namespace ps::serve {

KvCachePool::KvCachePool(const LlamaConfig& c, int64_t slots, int64_t max_len,
                         const torch::TensorOptions& options, bool scratch)
    : slots_(slots),
      max_len_(max_len),
      lengths_(static_cast<size_t>(slots), 0),
      taken_(static_cast<size_t>(slots), false) {
  if (slots <= 0 || max_len <= 0)
    throw Error("KV cache: slots and max length must be positive (got " + std::to_string(slots) +
                ", " + std::to_string(max_len) + ")");
  const int64_t all = slots + (scratch ? 1 : 0);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    k_.push_back(torch::zeros({all, c.num_key_value_heads, max_len, c.head_dim}, options));
    v_.push_back(torch::zeros({all, c.num_key_value_heads, max_len, c.head_dim}, options));
  }
}

std::optional<int> KvCachePool::Acquire() {
  for (size_t s = 0; s < taken_.size(); ++s) {
    if (taken_[s]) continue;
    taken_[s] = true;
    lengths_[s] = 0;
    return static_cast<int>(s);
  }
  return std::nullopt;
}

void KvCachePool::Release(int slot) {
  taken_.at(static_cast<size_t>(slot)) = false;
  lengths_.at(static_cast<size_t>(slot)) = 0;
}

int64_t KvCachePool::used_tokens() const {
  int64_t n = 0;
  for (size_t s = 0; s < lengths_.size(); ++s) n += taken_[s] ? lengths_[s] : 0;
  return n;
}

int64_t KvCachePool::bytes() const {
  int64_t n = 0;
  for (size_t l = 0; l < k_.size(); ++l) n += k_[l].nbytes() + v_[l].nbytes();
  return n;
}

}  // namespace ps::serve

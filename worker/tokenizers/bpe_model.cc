#include "worker/tokenizers/bpe_model.h"

#include <cstdio>
#include <queue>

#include "common/error.h"
#include "worker/tokenizers/byte_level.h"

namespace ps {

BpeModel::BpeModel(BpeModelConfig config)
    : vocab_(std::move(config.vocab)),
      fuse_unk_(config.fuse_unk),
      byte_fallback_(config.byte_fallback),
      ignore_merges_(config.ignore_merges) {
  int32_t max_id = -1;
  for (const auto& [tok, id] : vocab_) {
    if (id < 0) throw Error("tokenizer.json: negative id " + std::to_string(id) + " for " + tok);
    max_id = std::max(max_id, id);
  }
  id_to_token_.resize(static_cast<size_t>(max_id + 1));
  std::vector<bool> assigned(id_to_token_.size(), false);
  for (const auto& [tok, id] : vocab_) {
    if (assigned[id])
      throw Error("tokenizer.json: id " + std::to_string(id) + " used by both \"" +
                  id_to_token_[id] + "\" and \"" + tok + "\"");
    id_to_token_[id] = tok;
    assigned[id] = true;
  }
  merges_.reserve(config.merges.size());
  for (size_t r = 0; r < config.merges.size(); ++r) {
    const auto& [a, b] = config.merges[r];
    auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || iab == vocab_.end())
      throw Error("tokenizer.json: merge " + std::to_string(r) + " (\"" + a + "\" \"" + b +
                  "\") uses a token that is not in the vocabulary");
    // A pair listed twice keeps its first (lowest) rank, as Hugging Face does.
    merges_.try_emplace(PairKey(ia->second, ib->second),
                        Merge{static_cast<int32_t>(r), iab->second});
  }
  for (int b = 0; b < 256; ++b) {
    std::string ch = ByteLevelEncode(std::string_view(reinterpret_cast<const char*>(&b), 1));
    auto it = vocab_.find(ch);
    byte_token_[b] = it == vocab_.end() ? -1 : it->second;
    char fb[8];
    std::snprintf(fb, sizeof(fb), "<0x%02X>", b);
    it = vocab_.find(fb);
    fallback_token_[b] = it == vocab_.end() ? -1 : it->second;
  }
  if (config.unk_token) {
    auto it = vocab_.find(*config.unk_token);
    if (it == vocab_.end())
      throw Error("tokenizer.json: unk_token \"" + *config.unk_token +
                  "\" is not in the vocabulary");
    unk_ = it->second;
  }
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::IdToToken(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || id >= size()) return kEmpty;
  return id_to_token_[id];
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t a, int32_t b) const {
  auto it = merges_.find(PairKey(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

// One symbol per byte. Bytes without a token: "<0xXX>" with byte_fallback (such symbols take
// part in no merge), else unk (consecutive unks fused into one when fuse_unk), else an error.
// A symbol id of -1 - k marks the k-th fallback id so that merges skip it.
void BpeModel::InitialSymbols(std::string_view word, std::vector<int32_t>& syms) const {
  syms.clear();
  bool last_unk = false;
  for (unsigned char b : word) {
    if (byte_token_[b] >= 0) {
      syms.push_back(byte_token_[b]);
      last_unk = false;
    } else if (byte_fallback_ && fallback_token_[b] >= 0) {
      syms.push_back(-1 - fallback_token_[b]);
      last_unk = false;
    } else if (unk_) {
      if (!(fuse_unk_ && last_unk)) syms.push_back(-1 - *unk_);
      last_unk = true;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", b);
      throw Error(std::string("tokenizer: byte ") + hex +
                  " has no token in the vocabulary and the model has neither byte_fallback nor "
                  "an unk_token");
    }
  }
}

void BpeModel::Tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(ByteLevelEncode(word));
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> id;
  InitialSymbols(word, id);
  const int n = static_cast<int>(id.size());
  if (n == 1) {
    out.push_back(id[0] < 0 ? -1 - id[0] : id[0]);
    return;
  }
  // Doubly linked list over the symbols; a min-heap of candidate merges keyed by (rank,
  // position). Entries go stale when a neighbour merges; they are recognised on pop by checking
  // that the pair at that position still is the pair that was queued.
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Cand {
    int32_t rank;
    int pos;
    int32_t merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto consider = [&](int i) {
    int j = next[i];
    if (j < 0 || id[i] < 0 || id[j] < 0) return;
    if (const Merge* m = FindMerge(id[i], id[j])) heap.push({m->rank, i, m->merged});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int i = c.pos;
    if (!alive[i]) continue;
    int j = next[i];
    if (j < 0 || id[i] < 0 || id[j] < 0) continue;
    const Merge* m = FindMerge(id[i], id[j]);
    if (!m || m->merged != c.merged || m->rank != c.rank) continue;
    id[i] = c.merged;
    alive[j] = false;
    next[i] = next[j];
    if (next[j] >= 0) prev[next[j]] = i;
    if (prev[i] >= 0) consider(prev[i]);
    consider(i);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i] < 0 ? -1 - id[i] : id[i]);
}

}  // namespace ps

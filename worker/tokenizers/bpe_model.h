// The BPE model of a byte-level tokenizer.json ("model": {"type": "BPE", ...}): vocabulary, merge
// ranks, and the merge loop. Input words are raw bytes (one pre-tokenized piece); each byte
// starts as the symbol of its byte-level character (byte_level.h) and adjacent symbols are merged
// lowest rank first, leftmost first among equal ranks, as Hugging Face tokenizers does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ps {

struct BpeModelConfig {
  // token -> id (the "vocab" object: tokens in byte-level form)
  std::unordered_map<std::string, int32_t> vocab;
  // merges in rank order (rank 0 first), each as its two tokens
  std::vector<std::pair<std::string, std::string>> merges;
  std::optional<std::string> unk_token;
  bool fuse_unk = false;
  bool byte_fallback = false;  // bytes missing from the vocab become "<0xXX>" tokens
  bool ignore_merges = false;  // a word found whole in the vocab is one token (Llama-3)
};

class BpeModel {
 public:
  // Throws ps::Error for duplicate ids, merges naming tokens outside the vocabulary, or an
  // unk_token that is not in it.
  explicit BpeModel(BpeModelConfig config);

  // Appends the ids of one pre-tokenized word (raw bytes). Throws ps::Error when a byte has no
  // token and neither byte_fallback nor unk_token covers it.
  void Tokenize(std::string_view word, std::vector<int32_t>& out) const;

  std::optional<int32_t> TokenToId(std::string_view token) const;
  // Empty when the id is not in the vocabulary.
  const std::string& IdToToken(int32_t id) const;
  // max id + 1
  int32_t size() const { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  const Merge* FindMerge(int32_t a, int32_t b) const;
  void InitialSymbols(std::string_view word, std::vector<int32_t>& syms) const;

  std::unordered_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  int32_t byte_token_[256];      // id of each byte's byte-level character, -1 if absent
  int32_t fallback_token_[256];  // id of "<0xXX>", -1 if absent
  std::optional<int32_t> unk_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
};

}  // namespace ps

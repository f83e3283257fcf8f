// A byte-level test tokenizer: id = byte + 3 (0 unk, 1 BOS, 2 EOS), so expectations can be written
// by hand.
#pragma once

#include "common/error.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps::testing {

class ByteTokenizer : public Tokenizer {
 public:
  explicit ByteTokenizer(bool add_bos = true) {
    bos_ = 1;
    eos_ = 2;
    add_bos_ = add_bos;
  }
  std::vector<int32_t> Encode(std::string_view text) const override {
    std::vector<int32_t> ids;
    for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c) + 3);
    return ids;
  }
  std::string Decode(const std::vector<int32_t>& ids) const override {
    std::string s;
    for (int32_t id : ids)
      if (id >= 3) s += static_cast<char>(id - 3);
    return s;
  }
  int32_t vocab_size() const override { return 259; }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    if (token.size() != 1) return std::nullopt;
    return static_cast<int32_t>(static_cast<unsigned char>(token[0])) + 3;
  }
  std::string IdToToken(int32_t id) const override {
    if (id < 3 || id >= 259) throw Error("id out of range");
    return std::string(1, static_cast<char>(id - 3));
  }
};

}  // namespace ps::testing

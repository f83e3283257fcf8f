#include "worker/tokenizers/tokenizer.h"

#include "common/error.h"

namespace ps {

std::vector<int32_t> Tokenizer::EncodeForModel(std::string_view text) const {
  std::vector<int32_t> ids;
  if (add_bos_ && bos_) ids.push_back(*bos_);
  auto body = Encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_eos_ && eos_) ids.push_back(*eos_);
  return ids;
}

void Tokenizer::SetSpecialTokens(std::optional<int32_t> bos, std::optional<int32_t> eos,
                                 bool add_bos, bool add_eos) {
  for (auto id : {bos, eos})
    if (id && (*id < 0 || *id >= vocab_size()))
      throw Error("special token id " + std::to_string(*id) + " is outside the vocabulary (" +
                  std::to_string(vocab_size()) + ")");
  if (add_bos && !bos) throw Error("tokenizer config asks to add BOS but names no BOS token");
  if (add_eos && !eos) throw Error("tokenizer config asks to add EOS but names no EOS token");
  bos_ = bos;
  eos_ = eos;
  add_bos_ = add_bos;
  add_eos_ = add_eos;
}

}  // namespace ps

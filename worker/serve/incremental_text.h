// A request's completion text as tokens arrive: decoded together with the prompt (SentencePiece
// drops a word's leading space at the start of a decode, so decoding the new tokens alone would
// lose spaces, as `pstool generate` notes), cut at the first stop sequence, and released to the
// stream only when it can no longer change: text that could still become a stop sequence, or a
// trailing incomplete UTF-8 character (decoded as U+FFFD), is held back until the next token.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "worker/tokenizers/tokenizer.h"

namespace ps::serve {

class IncrementalText {
 public:
  IncrementalText(const Tokenizer& tokenizer, std::vector<int32_t> prompt,
                  std::vector<std::string> stop);
  // Adds one generated token; returns the text newly safe to send (maybe empty). After a stop
  // sequence appears, stopped() is true and the text ends before it.
  std::string Add(int32_t id);
  // The rest of the text, held back so far (call once, at the end).
  std::string Flush();
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }

 private:
  const Tokenizer& tok_;
  std::vector<int32_t> ids_;  // prompt + generated
  ptrdiff_t prompt_len_;
  std::string prompt_text_;
  std::vector<std::string> stop_;
  std::string text_;  // the completion so far, cut at a stop sequence
  size_t sent_ = 0;   // bytes of text_ released
  bool stopped_ = false;
};

}  // namespace ps::serve

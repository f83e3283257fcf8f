// A request's completion text as tokens arrive: decoded together with the prompt (SentencePiece
// drops a word's leading space at the start of a decode, so decoding the new tokens alone would
// lose spaces, as `pstool generate` notes), cut at the first stop sequence, and released to the
// stream only when it can no longer change: text that could still become a stop sequence, or a
// trailing incomplete UTF-8 character (decoded as U+FFFD), is held back until the next token.
//
// Each token costs a decode of a few tokens, not of the whole sequence: the text is extended
// from a window that starts at the token before the last complete character (so a leading space
// is decoded as it is in context), and the window moves on whenever the text ends in a complete
// character. When the window's text does not extend what it gave before (a tokenizer whose decode
// changes earlier text with what follows), that token falls back to decoding prompt and
// completion together.
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
  // The whole completion by decoding prompt and completion together (the fallback).
  std::string FullCompletionText() const;
  std::string DecodeRange(size_t begin, size_t end) const;

  size_t window_ = 0;         // first token of the decode window
  size_t committed_end_ = 0;  // tokens whose text is `committed_`
  std::string committed_;     // the completion's text up to committed_end_ (complete characters)
  std::string window_text_;   // the decode of ids_[window_, committed_end_)
  std::string text_;          // the completion so far, cut at a stop sequence
  size_t sent_ = 0;           // bytes of text_ released
  bool stopped_ = false;
};

}  // namespace ps::serve

// OpenAI's `logprobs` objects from scored tokens (token_logprobs.h), for a whole response or one
// streamed chunk at a time:
// - completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}, where each
//   top_logprobs entry maps token text -> logprob for the most likely tokens and the chosen one
//   (so up to logprobs + 1 keys), null for a sequence's first token, and text_offset counts
//   characters from the start of the choice's text;
// - chat: {"content": [{"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob",
//   "bytes"}]}]}.
// A token's text is what it adds to the text in context (TokenText), so the tokens of a choice
// concatenate to its text (up to the stop-sequence cut).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "worker/serve/token_logprobs.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps::serve {

class LogprobsJson {
 public:
  // `context`: the tokens before the first scored one (the prompt, or none when the prompt is
  // echoed and scored itself).
  LogprobsJson(const Tokenizer& tokenizer, bool chat, std::vector<int32_t> context);
  // The logprobs object of these tokens, which follow the ones formatted before.
  nlohmann::json Format(const std::vector<TokenLogprob>& tokens);

 private:
  const Tokenizer& tok_;
  bool chat_;
  std::vector<int32_t> context_;
  int64_t offset_ = 0;  // characters of text before the next token
};

}  // namespace ps::serve

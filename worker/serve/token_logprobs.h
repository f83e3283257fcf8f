// Log-probabilities of tokens for OpenAI's `logprobs` (completions, with `echo` the prompt's
// tokens too) and chat's `logprobs` / `top_logprobs`: what a client needs to score text with the
// served model (lm-evaluation-harness's loglikelihood tasks send `echo` + `logprobs` with
// `max_tokens` 0 or 1).
//
// A token's log-probability is the log-softmax, in fp32, of the model's logits at the position
// that predicts it: the model's own distribution, before temperature or top-p.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "worker/tokenizers/tokenizer.h"

namespace ps::serve {

struct TokenLogprob {
  int32_t id = 0;
  // None for a sequence's first token: nothing predicts it.
  std::optional<float> logprob;
  // The most likely tokens at this position, most likely first (equal ones by lower id).
  std::vector<std::pair<int32_t, float>> top;
};

// For each row i of `logits` ([n, vocab], any float dtype and device): the log-probability of
// ids[i] and the `top` most likely tokens (0 <= top <= vocab). Rows are done a block at a time,
// so a long prompt never needs all its fp32 log-softmax rows at once.
std::vector<TokenLogprob> ScoreRows(const torch::Tensor& logits, const std::vector<int32_t>& ids,
                                    int64_t top);

// The text token `id` adds after the tokens `before` it, as decoding the sequence with it gives
// (so SentencePiece's word-boundary space stays with the token): the decode of a few tokens of
// context with `id` minus the decode without it. When the shorter decode is not a prefix of the
// longer one (a token ends inside a UTF-8 character, or a decode rewrites earlier text), the
// token's own decode.
std::string TokenText(const Tokenizer& tokenizer, const std::vector<int32_t>& before, int32_t id);

}  // namespace ps::serve

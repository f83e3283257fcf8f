// OpenAI request bodies (/v1/completions, /v1/chat/completions) -> what the scheduler runs.
// Every problem is a BadRequest naming the field and what is allowed (HTTP 400).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/serve/chat_template.h"
#include "worker/serve/logit_adjust.h"
#include "worker/serve/sampler.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps::serve {

class BadRequest : public Error {
 public:
  BadRequest(const std::string& message, std::string param)
      : Error(message), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

struct GenerationRequest {
  bool chat = false;
  std::vector<int32_t> prompt_ids;  // BOS included when the tokenizer asks for it
  int64_t max_tokens = 16;
  SamplingParams sampling;
  LogitAdjust adjust;  // logit_bias and the penalties, before greedy or sampling
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;  // the request's, plus the chat template's turn end
  bool ignore_eos = false;        // extension: keep going past EOS (benchmarks)
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool return_token_ids = false;  // extension: choices[].token_ids
  // Log-probabilities of the generated tokens with this many alternatives each (completions'
  // `logprobs`, chat's `top_logprobs` when `logprobs` is true); -1: none.
  int64_t logprobs = -1;
  // Completions' `echo`: the prompt's text leads the completion's, and with logprobs the
  // prompt's tokens are scored too. `max_tokens` 0 is allowed with it (score a text, generate
  // nothing).
  bool echo = false;
  std::string echo_text;  // the prompt as given (a string), or its ids decoded
  // This choice's place in its request: `index` in the response's choices (prompt x n + k for
  // the k-th of `n` choices of a prompt).
  int64_t index = 0;
  int64_t n = 1;
};

// The most alternatives a request may ask for per token (completions' `logprobs`, chat's
// `top_logprobs`).
inline constexpr int64_t kMaxLogprobs = 20;

// The most choices one request may make (prompts x n), unless the server's queue is shorter.
inline constexpr int64_t kMaxChoices = 64;

struct ParseContext {
  const Tokenizer* tokenizer = nullptr;
  ChatTemplate chat_template = ChatTemplate::kPlain;
  int64_t max_len = 2048;             // context positions per request
  int64_t max_choices = kMaxChoices;  // prompts x n per request
};

// `body` is the raw HTTP body; the result has one GenerationRequest per choice, in the order of
// the response's choices: completions' prompts in order (`prompt` may be an array of strings or
// of token-id arrays), `n` choices each (`n` for chat too). With a seed, the k-th choice of a
// prompt samples with seed + k, so the n choices differ and each repeats. Throws BadRequest.
std::vector<GenerationRequest> ParseCompletionRequest(const std::string& body,
                                                      const ParseContext& ctx);
std::vector<GenerationRequest> ParseChatRequest(const std::string& body, const ParseContext& ctx);

// POST /tokenize (vLLM's shape): "prompt", a string tokenized as completions do it (BOS as the
// model asks; "add_special_tokens": false leaves it out), or "messages", rendered with the chat
// template as chat completions do it. POST /detokenize: "tokens", ids in the vocabulary. Both
// throw BadRequest.
std::vector<int32_t> ParseTokenizeRequest(const std::string& body, const ParseContext& ctx);
std::vector<int32_t> ParseDetokenizeRequest(const std::string& body, const ParseContext& ctx);

}  // namespace ps::serve

// Zero-shot multiple choice the lm-evaluation-harness way: each choice's continuation is scored
// by the sum of its tokens' log-likelihoods given the context; acc takes the best sum, acc_norm
// the best sum divided by the choice's length in characters (Unicode code points, as lm-eval's
// len(str)).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "worker/eval/tasks.h"
#include "worker/models/llama_model.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {

struct McOptions {
  int64_t max_length = 512;  // inputs longer than this keep their last max_length tokens
  int64_t batch = 16;        // requests per forward pass
  bool progress = true;
};

struct McResult {
  double acc = 0;
  double acc_norm = 0;
  int64_t items = 0;
  double seconds = 0;
  // Per item: log-likelihood of each choice.
  std::vector<std::vector<double>> loglikelihoods;
};

// A request: context tokens, continuation tokens.
using ContextContinuation = std::pair<std::vector<int32_t>, std::vector<int32_t>>;

// lm-eval's _encode_pair: trailing spaces of the context move to the continuation; the
// continuation's tokens are those of encode(context + continuation) after encode(context)'s.
// With the tokenizer's add_bos the context gets BOS in front.
ContextContinuation EncodePair(const Tokenizer& tok, const std::string& context,
                               const std::string& continuation);

// What a request scores: context + continuation, keeping its last max_length + 1 tokens (the
// model sees all but the last; the continuation's log-probs come from its last positions).
// Throws when the continuation does not fit.
std::vector<int32_t> ScoredTokens(const ContextContinuation& request, int64_t max_length);

// Sum of log p(continuation tokens | context tokens) for each request, batched (right-padded).
std::vector<double> ScoreContinuations(LlamaForCausalLM& model,
                                       const std::vector<ContextContinuation>& requests,
                                       const McOptions& options);

McResult EvaluateMultipleChoice(LlamaForCausalLM& model, const Tokenizer& tok,
                                const std::vector<McItem>& items, const McOptions& options);

// The same with the requests scored by `score` (each request's continuation log-likelihood, as
// ScoreContinuations gives it): a model scored elsewhere, such as a running psserve (pstool eval
// --server).
using ContinuationScorer =
    std::function<std::vector<double>(const std::vector<ContextContinuation>& requests)>;
McResult EvaluateMultipleChoice(const Tokenizer& tok, const std::vector<McItem>& items,
                                const McOptions& options, const ContinuationScorer& score);

// Number of Unicode code points in UTF-8 text.
int64_t CodePoints(const std::string& s);

}  // namespace ps

#include "worker/eval/multiple_choice.h"

#include <chrono>
#include <cstdio>

#include "common/error.h"

namespace ps {

int64_t CodePoints(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

ContextContinuation EncodePair(const Tokenizer& tok, const std::string& context,
                               const std::string& continuation) {
  std::string ctx = context, cont = continuation;
  size_t keep = ctx.find_last_not_of(" \t\n\r\f\v");
  keep = keep == std::string::npos ? 0 : keep + 1;
  if (keep < ctx.size()) {
    cont = ctx.substr(keep) + cont;
    ctx.resize(keep);
  }
  std::vector<int32_t> ctx_enc, cont_enc;
  if (tok.add_bos() && tok.bos_id()) ctx_enc.push_back(*tok.bos_id());
  if (ctx.empty()) {
    cont_enc = tok.Encode(cont);
  } else {
    auto whole = tok.Encode(ctx + cont);
    auto c = tok.Encode(ctx);
    ctx_enc.insert(ctx_enc.end(), c.begin(), c.end());
    if (c.size() <= whole.size())
      cont_enc.assign(whole.begin() + static_cast<long>(c.size()), whole.end());
  }
  if (ctx_enc.empty()) {
    // Nothing to condition on: lm-eval conditions on the prefix token (BOS, else EOS).
    auto prefix = tok.bos_id() ? tok.bos_id() : tok.eos_id();
    if (!prefix) throw Error("multiple choice: empty context and the tokenizer has no BOS/EOS");
    ctx_enc.push_back(*prefix);
  }
  return {ctx_enc, cont_enc};
}

std::vector<int32_t> ScoredTokens(const ContextContinuation& request, int64_t max_length) {
  const auto& [ctx, cont] = request;
  std::vector<int32_t> all(ctx.begin(), ctx.end());
  all.insert(all.end(), cont.begin(), cont.end());
  const int64_t keep = std::min<int64_t>(static_cast<int64_t>(all.size()), max_length + 1);
  if (static_cast<int64_t>(cont.size()) > keep - 1)
    throw Error("multiple choice: continuation longer than max_length");
  return std::vector<int32_t>(all.end() - keep, all.end());
}

std::vector<double> ScoreContinuations(LlamaForCausalLM& model,
                                       const std::vector<ContextContinuation>& requests,
                                       const McOptions& options) {
  torch::NoGradGuard no_grad;
  std::vector<double> out(requests.size(), 0.0);
  int64_t batch = std::max<int64_t>(1, options.batch);
  for (size_t start = 0; start < requests.size(); start += static_cast<size_t>(batch)) {
    size_t end = std::min(requests.size(), start + static_cast<size_t>(batch));
    // Input = (context + continuation)[-(max_length+1):][:-1]; the continuation's log-probs come
    // from the last len(continuation) positions.
    std::vector<std::vector<int64_t>> inputs;
    std::vector<std::vector<int64_t>> targets;
    int64_t longest = 1;
    for (size_t r = start; r < end; ++r) {
      const auto scored = ScoredTokens(requests[r], options.max_length);
      std::vector<int64_t> window(scored.begin(), scored.end() - 1);
      inputs.push_back(window);
      targets.emplace_back(requests[r].second.begin(), requests[r].second.end());
      longest = std::max<int64_t>(longest, static_cast<int64_t>(window.size()));
    }
    auto ids = torch::zeros({static_cast<int64_t>(inputs.size()), longest}, torch::kInt64);
    for (size_t b = 0; b < inputs.size(); ++b) {
      auto row = torch::tensor(inputs[b], torch::kInt64);
      ids[static_cast<int64_t>(b)].narrow(0, 0, row.size(0)).copy_(row);
    }
    auto logp =
        torch::log_softmax(model.forward(ids.to(model.device())).to(torch::kFloat32), -1).cpu();
    for (size_t b = 0; b < inputs.size(); ++b) {
      int64_t len = static_cast<int64_t>(inputs[b].size());
      int64_t n = static_cast<int64_t>(targets[b].size());
      // n <= len: ScoredTokens refused longer continuations.
      auto rows = logp[static_cast<int64_t>(b)].narrow(0, len - n, n);  // [n, V]
      auto tgt = torch::tensor(targets[b], torch::kInt64).unsqueeze(1);
      out[start + b] = rows.gather(1, tgt).to(torch::kFloat64).sum().item<double>();
    }
  }
  return out;
}

McResult EvaluateMultipleChoice(LlamaForCausalLM& model, const Tokenizer& tok,
                                const std::vector<McItem>& items, const McOptions& options) {
  return EvaluateMultipleChoice(tok, items, options,
                                [&](const std::vector<ContextContinuation>& requests) {
                                  return ScoreContinuations(model, requests, options);
                                });
}

McResult EvaluateMultipleChoice(const Tokenizer& tok, const std::vector<McItem>& items,
                                const McOptions& options, const ContinuationScorer& score) {
  auto t0 = std::chrono::steady_clock::now();
  McResult r;
  std::vector<ContextContinuation> requests;
  for (const auto& item : items) {
    for (size_t c = 0; c < item.contexts.size(); ++c) {
      requests.push_back(EncodePair(tok, item.contexts[c], item.continuations[c]));
    }
  }
  // Score in chunks so progress can be shown.
  std::vector<double> ll;
  size_t chunk = static_cast<size_t>(std::max<int64_t>(1, options.batch)) * 8;
  for (size_t s = 0; s < requests.size(); s += chunk) {
    std::vector<ContextContinuation> part(
        requests.begin() + static_cast<long>(s),
        requests.begin() + static_cast<long>(std::min(requests.size(), s + chunk)));
    auto scores = score(part);
    ll.insert(ll.end(), scores.begin(), scores.end());
    if (options.progress) {
      std::fprintf(stderr, "\rmultiple choice: %zu/%zu requests", ll.size(), requests.size());
      std::fflush(stderr);
    }
  }
  if (options.progress) std::fprintf(stderr, "\n");
  size_t k = 0;
  int64_t correct = 0, correct_norm = 0;
  for (const auto& item : items) {
    std::vector<double> scores(ll.begin() + static_cast<long>(k),
                               ll.begin() + static_cast<long>(k + item.contexts.size()));
    k += item.contexts.size();
    // np.argmax: the first of equal maxima wins.
    size_t best = 0, best_norm = 0;
    double best_norm_score = 0;
    for (size_t c = 0; c < scores.size(); ++c) {
      double norm =
          scores[c] / static_cast<double>(std::max<int64_t>(1, CodePoints(item.norm_texts[c])));
      if (scores[c] > scores[best]) best = c;
      if (c == 0 || norm > best_norm_score) {
        best_norm = c;
        best_norm_score = norm;
      }
    }
    correct += static_cast<int64_t>(best) == item.label;
    correct_norm += static_cast<int64_t>(best_norm) == item.label;
    r.loglikelihoods.push_back(std::move(scores));
  }
  r.items = static_cast<int64_t>(items.size());
  if (r.items > 0) {
    r.acc = static_cast<double>(correct) / static_cast<double>(r.items);
    r.acc_norm = static_cast<double>(correct_norm) / static_cast<double>(r.items);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace ps

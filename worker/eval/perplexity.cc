#include "worker/eval/perplexity.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>

#include "common/error.h"

namespace ps {

torch::Tensor MakeWindows(const std::vector<int32_t>& tokens, int64_t ctx) {
  if (ctx < 2) throw Error("perplexity: context length must be >= 2, got " + std::to_string(ctx));
  int64_t n = static_cast<int64_t>(tokens.size()) / ctx;
  auto all = torch::from_blob(const_cast<int32_t*>(tokens.data()),
                              {static_cast<int64_t>(tokens.size())}, torch::kInt32);
  return all.narrow(0, 0, n * ctx).to(torch::kInt64).view({n, ctx});
}

torch::Tensor SequenceNll(LlamaForCausalLM& model, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  auto in = ids.to(model.device(), torch::kInt64);
  auto logits = model.forward(in);  // [B, T, V]
  int64_t T = in.size(1);
  auto logp = torch::log_softmax(logits.narrow(1, 0, T - 1).to(torch::kFloat32), -1);
  auto target = in.narrow(1, 1, T - 1).unsqueeze(-1);
  auto nll = -logp.gather(-1, target).squeeze(-1);  // [B, T-1]
  return nll.to(torch::kFloat64).sum(1).cpu();
}

PerplexityResult Perplexity(LlamaForCausalLM& model, const std::vector<int32_t>& tokens,
                            const PerplexityOptions& options) {
  return Perplexity(tokens, options, [&](const torch::Tensor& windows) {
    return SequenceNll(model, windows).sum().item<double>();
  });
}

PerplexityResult Perplexity(const std::vector<int32_t>& tokens, const PerplexityOptions& options,
                            const WindowsNll& windows_nll) {
  auto start = std::chrono::steady_clock::now();
  PerplexityResult r;
  r.text_tokens = static_cast<int64_t>(tokens.size());
  auto windows = MakeWindows(tokens, options.ctx);
  r.windows_available = windows.size(0);
  int64_t n = r.windows_available;
  if (options.max_windows) n = std::min(n, *options.max_windows);
  if (n <= 0) {
    throw Error("perplexity: the text has " + std::to_string(tokens.size()) +
                " tokens, fewer than one window of " + std::to_string(options.ctx));
  }
  int64_t batch = std::max<int64_t>(1, options.batch);
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  double total = 0;
  for (int64_t b = 0; b < n; b += batch) {
    int64_t m = std::min(batch, n - b);
    total += windows_nll(windows.narrow(0, b, m));
    const int64_t done = b + m;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (options.on_progress) {
      options.on_progress(done, n, secs);
    } else if (options.progress && (tty || done == n || done * 10 / n != b * 10 / n)) {
      // A terminal gets one redrawn line; a log gets a plain line per 10%.
      double tps = static_cast<double>(done * options.ctx) / std::max(secs, 1e-9);
      double eta = secs / static_cast<double>(done) * static_cast<double>(n - done);
      std::fprintf(stderr,
                   "%sperplexity: %lld/%lld windows, ppl %.4f, %.0f tok/s, %.1f s, ETA %.0f s%s",
                   tty ? "\r\033[K" : "", (long long)done, (long long)n,
                   std::exp(total / static_cast<double>(done * (options.ctx - 1))), tps, secs, eta,
                   tty ? "" : "\n");
      std::fflush(stderr);
    }
  }
  if (options.progress && !options.on_progress && tty) std::fprintf(stderr, "\n");
  r.windows = n;
  r.predicted_tokens = n * (options.ctx - 1);
  r.mean_nll = total / static_cast<double>(r.predicted_tokens);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace ps

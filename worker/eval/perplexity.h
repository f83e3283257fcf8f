// Perplexity by the standard protocol: the whole text tokenized once (BOS first when the
// tokenizer asks for it), cut into non-overlapping windows of the context length (the tail that
// does not fill a window is dropped), each window scored on its own; perplexity = exp(mean NLL
// over every predicted token, i.e. ctx-1 per window).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "worker/models/llama_model.h"

namespace ps {

struct PerplexityOptions {
  int64_t ctx = 512;                   // window length
  int64_t batch = 8;                   // windows per forward pass
  std::optional<int64_t> max_windows;  // score only the first N windows
  bool progress = true;                // progress on stderr (a redrawn line on a terminal,
                                       // a plain line every 10% otherwise)
  // Called after every batch instead of the stderr line: windows done, windows, seconds so far.
  std::function<void(int64_t, int64_t, double)> on_progress;
};

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;            // nats per predicted token
  int64_t windows = 0;            // windows scored
  int64_t windows_available = 0;  // windows in the whole text
  int64_t predicted_tokens = 0;
  int64_t text_tokens = 0;
  double seconds = 0;
};

// Splits `tokens` into floor(n / ctx) windows [N, ctx] (int64).
torch::Tensor MakeWindows(const std::vector<int32_t>& tokens, int64_t ctx);

// Sum of the next-token NLLs of each row of `ids` [B, T] (T-1 predictions per row), in fp64.
torch::Tensor SequenceNll(LlamaForCausalLM& model, const torch::Tensor& ids);

PerplexityResult Perplexity(LlamaForCausalLM& model, const std::vector<int32_t>& tokens,
                            const PerplexityOptions& options);

// The same protocol with the windows scored by `windows_nll`: given a batch of windows [m, ctx]
// (int64, on the CPU), the sum of their next-token NLLs in nats. For a model scored elsewhere,
// such as a running psserve (pstool eval --server).
using WindowsNll = std::function<double(const torch::Tensor& windows)>;
PerplexityResult Perplexity(const std::vector<int32_t>& tokens, const PerplexityOptions& options,
                            const WindowsNll& windows_nll);

}  // namespace ps

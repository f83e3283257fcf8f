#include "worker/serve/token_logprobs.h"

#include <torch/torch.h>

#include <algorithm>

#include "common/error.h"

namespace ps::serve {

std::vector<TokenLogprob> ScoreRows(const torch::Tensor& logits, const std::vector<int32_t>& ids,
                                    int64_t top) {
  if (logits.dim() != 2 || logits.size(0) != static_cast<int64_t>(ids.size()))
    throw Error("ScoreRows: logits must be [n, vocab] with n = " + std::to_string(ids.size()) +
                " ids");
  const int64_t vocab = logits.size(1);
  if (top < 0 || top > vocab)
    throw Error("ScoreRows: top is " + std::to_string(top) + "; it must be in [0, " +
                std::to_string(vocab) + "]");
  torch::NoGradGuard no_grad;
  std::vector<TokenLogprob> out(ids.size());
  // 256 rows at a time: a 2,048-token prompt of a 32k vocabulary would otherwise take 256 MB of
  // fp32 log-softmax at once.
  constexpr int64_t kBlock = 256;
  const auto id_opts = torch::dtype(torch::kInt64).device(logits.device());
  for (int64_t r0 = 0; r0 < logits.size(0); r0 += kBlock) {
    const int64_t rows = std::min(kBlock, logits.size(0) - r0);
    const torch::Tensor lsm = torch::log_softmax(logits.narrow(0, r0, rows).to(torch::kFloat), -1);
    std::vector<int64_t> want(ids.begin() + r0, ids.begin() + r0 + rows);
    for (int64_t& w : want)
      if (w < 0 || w >= vocab)
        throw Error("ScoreRows: token id " + std::to_string(w) + " is outside the vocabulary (" +
                    std::to_string(vocab) + ")");
    const torch::Tensor chosen =
        lsm.gather(1, torch::tensor(want, id_opts).unsqueeze(1)).squeeze(1).to(torch::kCPU);
    torch::Tensor top_v, top_i;
    if (top > 0) {
      // topk alone picks arbitrarily among values equal to the k-th largest, so the selection
      // is made again: every value above the k-th, then the lowest ids among those equal to it.
      // NaN (a row from NaN logits) counts as the largest, as in topk.
      const torch::Tensor key = lsm.nan_to_num(INFINITY);
      const torch::Tensor kth = std::get<0>(key.topk(top, -1)).narrow(1, top - 1, 1);
      const torch::Tensor above = key > kth, equal = key == kth;
      const torch::Tensor room = top - above.sum(1, /*keepdim=*/true);
      const torch::Tensor keep = above | (equal & (equal.cumsum(1) <= room));
      // Exactly `top` per row, in row order, ids ascending within a row.
      const torch::Tensor idx = keep.nonzero().select(1, 1).reshape({rows, top});
      top_i = idx.to(torch::kCPU).contiguous();
      top_v = lsm.gather(1, idx).to(torch::kCPU).contiguous();
    }
    const auto ch = chosen.accessor<float, 1>();
    for (int64_t r = 0; r < rows; ++r) {
      TokenLogprob& t = out[static_cast<size_t>(r0 + r)];
      t.id = ids[static_cast<size_t>(r0 + r)];
      t.logprob = ch[r];
      if (top == 0) continue;
      const float* v = top_v.data_ptr<float>() + r * top;
      const int64_t* i = top_i.data_ptr<int64_t>() + r * top;
      for (int64_t k = 0; k < top; ++k) t.top.emplace_back(static_cast<int32_t>(i[k]), v[k]);
      // Most likely first, equal ones by lower id (a row with NaN stays in id order).
      if (std::any_of(t.top.begin(), t.top.end(),
                      [](const auto& e) { return e.second != e.second; }))
        continue;
      std::stable_sort(t.top.begin(), t.top.end(), [](const auto& a, const auto& b) {
        return a.second > b.second || (a.second == b.second && a.first < b.first);
      });
    }
  }
  return out;
}

std::string TokenText(const Tokenizer& tokenizer, const std::vector<int32_t>& before, int32_t id) {
  constexpr size_t kContext = 4;  // enough for a leading space and a multi-byte character
  std::vector<int32_t> window(
      before.end() - static_cast<ptrdiff_t>(std::min(kContext, before.size())), before.end());
  const std::string without = tokenizer.Decode(window);
  window.push_back(id);
  const std::string with = tokenizer.Decode(window);
  constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD: an incomplete character
  const bool clean = with.compare(0, without.size(), without) == 0 &&
                     with.find(kReplacement, without.size()) == std::string::npos;
  return clean ? with.substr(without.size()) : tokenizer.Decode({id});
}

}  // namespace ps::serve

#include "worker/serve/logit_adjust.h"

#include <unordered_map>
#include <unordered_set>

#include "common/error.h"

namespace ps::serve {

bool IsIdentity(const LogitAdjust& a) {
  return a.logit_bias.empty() && a.frequency_penalty == 0 && a.presence_penalty == 0 &&
         a.repetition_penalty == 1;
}

void AdjustLogits(torch::Tensor& logits, const LogitAdjust& a, const std::vector<int32_t>& prompt,
                  const std::vector<int32_t>& generated) {
  if (IsIdentity(a)) return;
  if (logits.dim() != 1 || logits.scalar_type() != torch::kFloat || !logits.is_contiguous() ||
      logits.device().type() != torch::kCPU)
    throw Error("AdjustLogits: logits must be one contiguous fp32 row on the CPU");
  float* x = logits.data_ptr<float>();
  const int64_t vocab = logits.numel();
  auto in_vocab = [&](int32_t t) { return t >= 0 && t < vocab; };
  for (const auto& [t, bias] : a.logit_bias)
    if (in_vocab(t)) x[t] += bias;
  if (a.repetition_penalty != 1) {
    std::unordered_set<int32_t> seen(prompt.begin(), prompt.end());
    seen.insert(generated.begin(), generated.end());
    const auto r = static_cast<float>(a.repetition_penalty);
    for (int32_t t : seen)
      if (in_vocab(t)) x[t] = x[t] > 0 ? x[t] / r : x[t] * r;
  }
  if (a.frequency_penalty != 0 || a.presence_penalty != 0) {
    std::unordered_map<int32_t, int64_t> count;
    for (int32_t t : generated) ++count[t];
    for (const auto& [t, n] : count)
      if (in_vocab(t))
        x[t] -=
            static_cast<float>(a.frequency_penalty * static_cast<double>(n) + a.presence_penalty);
  }
}

}  // namespace ps::serve

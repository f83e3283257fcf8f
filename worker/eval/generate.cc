#include "worker/eval/generate.h"

#include "common/error.h"

namespace ps {

std::vector<int32_t> GreedyGenerate(LlamaForCausalLM& model, const std::vector<int32_t>& prompt,
                                    int64_t max_new, std::optional<int32_t> eos) {
  if (prompt.empty()) throw Error("generate: empty prompt (no tokens)");
  torch::NoGradGuard no_grad;
  KvCache cache;
  std::vector<int32_t> out;
  auto ids =
      torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), torch::kInt64).unsqueeze(0);
  for (int64_t step = 0; step < max_new; ++step) {
    auto logits = model.forward(ids, &cache);  // [1, T, V]
    auto next = logits.select(1, logits.size(1) - 1).argmax(-1).item<int64_t>();
    out.push_back(static_cast<int32_t>(next));
    if (eos && next == *eos) break;
    ids = torch::full({1, 1}, next, torch::kInt64);
  }
  return out;
}

}  // namespace ps

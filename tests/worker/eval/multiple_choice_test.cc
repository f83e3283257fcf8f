#include "worker/eval/multiple_choice.h"

#include <gtest/gtest.h>

#include <cmath>

#include "tests/worker/eval/char_tokenizer.h"
#include "tests/worker/models/tiny_models.h"

namespace ps {
namespace {

using testing::ByteTokenizer;

// A byte-vocabulary (259) tiny model.
std::shared_ptr<LlamaForCausalLM> ByteModel(uint64_t seed) {
  auto config = testing::TinyConfig("llama");
  config["vocab_size"] = 259;
  return testing::RandomModel(config, seed);
}

TEST(MultipleChoice, EncodePairMovesTrailingSpacesAndAddsBos) {
  ByteTokenizer tok;
  auto [ctx, cont] = EncodePair(tok, "Answer: ", "yes");
  EXPECT_EQ(ctx, (std::vector<int32_t>{1, 'A' + 3, 'n' + 3, 's' + 3, 'w' + 3, 'e' + 3, 'r' + 3,
                                       ':' + 3}));
  EXPECT_EQ(cont, (std::vector<int32_t>{' ' + 3, 'y' + 3, 'e' + 3, 's' + 3}));
  ByteTokenizer no_bos(false);
  auto [c2, k2] = EncodePair(no_bos, "", "hi");
  EXPECT_EQ(c2, (std::vector<int32_t>{1}));  // empty context: conditioned on the prefix token
  EXPECT_EQ(k2.size(), 2u);
}

TEST(MultipleChoice, ScoresAreSumsOfTokenLogProbs) {
  auto model = ByteModel(51);
  ByteTokenizer tok;
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> reqs = {
      EncodePair(tok, "The cat", " sat"), EncodePair(tok, "A much longer context here", " x"),
      EncodePair(tok, "Q", " a long answer")};
  McOptions opt;
  opt.batch = 2;  // mixes lengths inside a batch (right padding)
  auto got = ScoreContinuations(*model, reqs, opt);
  torch::NoGradGuard no_grad;
  for (size_t r = 0; r < reqs.size(); ++r) {
    std::vector<int64_t> all(reqs[r].first.begin(), reqs[r].first.end());
    all.insert(all.end(), reqs[r].second.begin(), reqs[r].second.end());
    auto logp = torch::log_softmax(model->forward(torch::tensor(all).unsqueeze(0))[0], -1);
    double want = 0;
    size_t n_ctx = reqs[r].first.size();
    for (size_t i = 0; i < reqs[r].second.size(); ++i) {
      want += logp[static_cast<int64_t>(n_ctx + i - 1)][reqs[r].second[i]].item<double>();
    }
    EXPECT_NEAR(got[r], want, 1e-4) << r;
  }
  // Truncation keeps the last max_length tokens of context + continuation.
  opt.max_length = 6;
  auto cut = ScoreContinuations(*model, {reqs[1]}, opt);
  std::vector<int64_t> all(reqs[1].first.begin(), reqs[1].first.end());
  all.insert(all.end(), reqs[1].second.begin(), reqs[1].second.end());
  std::vector<int64_t> window(all.end() - 7, all.end() - 1);
  auto logp = torch::log_softmax(model->forward(torch::tensor(window).unsqueeze(0))[0], -1);
  double want =
      logp[4][reqs[1].second[0]].item<double>() + logp[5][reqs[1].second[1]].item<double>();
  EXPECT_NEAR(cut[0], want, 1e-4);
}

TEST(MultipleChoice, AccAndLengthNormalisedAcc) {
  auto model = ByteModel(52);
  ByteTokenizer tok;
  // Build items whose answers we know from the model's own scores.
  McItem item;
  for (const char* c : {"a", "bbbbbbbb", "cc"}) {
    item.contexts.push_back("Q:");
    item.continuations.push_back(std::string(" ") + c);
    item.norm_texts.push_back(c);
  }
  McOptions opt;
  opt.progress = false;
  auto probe = EvaluateMultipleChoice(*model, tok, {item}, opt);
  const auto& ll = probe.loglikelihoods[0];
  size_t best = static_cast<size_t>(std::max_element(ll.begin(), ll.end()) - ll.begin());
  std::vector<double> norm = {ll[0] / 1, ll[1] / 8, ll[2] / 2};
  size_t best_norm = static_cast<size_t>(std::max_element(norm.begin(), norm.end()) - norm.begin());
  std::vector<McItem> items;
  for (int64_t label = 0; label < 3; ++label) {
    items.push_back(item);
    items.back().label = label;
  }
  auto r = EvaluateMultipleChoice(*model, tok, items, opt);
  EXPECT_EQ(r.items, 3);
  EXPECT_NEAR(r.acc, 1.0 / 3, 1e-12);  // exactly one label is the argmax
  EXPECT_NEAR(r.acc_norm, 1.0 / 3, 1e-12);
  EXPECT_EQ(r.loglikelihoods[static_cast<size_t>(best)].size(), 3u);
  // The item labelled with the argmax is the one counted.
  auto only = EvaluateMultipleChoice(*model, tok, {items[best]}, opt);
  EXPECT_EQ(only.acc, 1.0);
  auto only_norm = EvaluateMultipleChoice(*model, tok, {items[best_norm]}, opt);
  EXPECT_EQ(only_norm.acc_norm, 1.0);
}

TEST(MultipleChoice, CodePoints) {
  EXPECT_EQ(CodePoints("abc"), 3);
  EXPECT_EQ(CodePoints("h\xC3\xA9llo"), 5);       // é
  EXPECT_EQ(CodePoints("\xF0\x9F\x98\x80!"), 2);  // emoji
}

}  // namespace
}  // namespace ps

#include "worker/eval/perplexity.h"

#include <gtest/gtest.h>

#include <cmath>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/eval/generate.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

using testing::RandomModel;
using testing::TinyConfig;

std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  auto t = torch::randint(0, vocab, {n}, torch::kInt32);
  return {t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + n};
}

TEST(Perplexity, WindowsAreNonOverlappingAndDropTheTail) {
  std::vector<int32_t> tokens(23);
  for (int i = 0; i < 23; ++i) tokens[static_cast<size_t>(i)] = i;
  auto w = MakeWindows(tokens, 5);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{4, 5}));
  EXPECT_EQ(w[1][0].item<int64_t>(), 5);
  EXPECT_EQ(w[3][4].item<int64_t>(), 19);
  EXPECT_THROW(MakeWindows(tokens, 1), Error);
}

TEST(Perplexity, MatchesTokenByTokenDefinition) {
  auto model = RandomModel(TinyConfig("mistral"), 41);
  auto tokens = RandomTokens(75, 97, 3);
  PerplexityOptions opt;
  opt.ctx = 16;
  opt.batch = 3;
  opt.progress = false;
  auto r = Perplexity(*model, tokens, opt);
  EXPECT_EQ(r.windows, 4);
  EXPECT_EQ(r.predicted_tokens, 4 * 15);
  // Definition: for each window, -log softmax(logits at t)[token t+1], summed, averaged.
  torch::NoGradGuard no_grad;
  double total = 0;
  for (int64_t w = 0; w < 4; ++w) {
    std::vector<int64_t> ids(tokens.begin() + w * 16, tokens.begin() + (w + 1) * 16);
    auto logits = model->forward(torch::tensor(ids).unsqueeze(0))[0].to(torch::kFloat64);
    for (int64_t t = 0; t + 1 < 16; ++t) {
      auto row = logits[t];
      double lse = std::log(row.exp().sum().item<double>());
      total += lse - row[ids[static_cast<size_t>(t + 1)]].item<double>();
    }
  }
  EXPECT_NEAR(r.mean_nll, total / 60.0, 1e-5);
  EXPECT_NEAR(r.perplexity, std::exp(total / 60.0), 1e-4);
  // Batch size does not change the answer; max_windows takes a prefix.
  opt.batch = 1;
  EXPECT_NEAR(Perplexity(*model, tokens, opt).mean_nll, r.mean_nll, 1e-6);
  opt.max_windows = 2;
  auto r2 = Perplexity(*model, tokens, opt);
  EXPECT_EQ(r2.windows, 2);
  EXPECT_EQ(r2.windows_available, 4);
  opt.max_windows.reset();
  opt.ctx = 100;
  EXPECT_THROW(Perplexity(*model, tokens, opt), Error);
}

TEST(Generate, GreedyMatchesArgmaxOfFullForward) {
  auto model = RandomModel(TinyConfig("qwen2"), 42);
  std::vector<int32_t> prompt = {1, 5, 9, 13};
  auto out = GreedyGenerate(*model, prompt, 6);
  ASSERT_EQ(out.size(), 6u);
  torch::NoGradGuard no_grad;
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  for (int32_t next : out) {
    auto logits = model->forward(torch::tensor(ids).unsqueeze(0));
    EXPECT_EQ(logits[0][static_cast<int64_t>(ids.size()) - 1].argmax().item<int64_t>(), next);
    ids.push_back(next);
  }
  // Stops after EOS.
  auto stop = GreedyGenerate(*model, prompt, 6, out[1]);
  EXPECT_LE(stop.size(), 2u);
}

// The default model on a prefix of the evaluation text (full-text figure: docs/models.md).
TEST(DefaultModel, PerplexityPrefixAndCompletion) {
  auto dir = std::filesystem::path(PS_SHARED_DATA) / "codelm-19m";
  auto text_file = std::filesystem::path(PS_SHARED_DATA) / "code-eval.txt";
  if (!std::filesystem::exists(dir) || !std::filesystem::exists(text_file)) {
    GTEST_SKIP() << "no shared data at " << PS_SHARED_DATA;
  }
  auto model = LoadLlama(dir);
  auto tok = LoadTokenizer(dir);
  // 4 windows of 512 need ~2k tokens; 40 kB of Python is ~14k tokens, and the tokenization of a
  // prefix agrees with that of the whole text far from the cut.
  auto text = ReadFile(text_file).substr(0, 40000);
  auto tokens = tok->EncodeForModel(text);
  ASSERT_EQ(tokens[0], 1);  // BOS first
  PerplexityOptions opt;
  opt.ctx = 512;
  opt.max_windows = 4;
  opt.progress = false;
  auto r = Perplexity(*model, tokens, opt);
  // Pinned from this implementation (pstool eval --max-windows 4 gives the same figure); the
  // first windows are harder than the whole text's average (4.760, docs/models.md).
  EXPECT_NEAR(r.perplexity, 5.8498, 0.006);
  auto prompt = tok->EncodeForModel("def add(a, b):\n    return");
  auto out = GreedyGenerate(*model, prompt, 8);
  std::string completion = tok->Decode(out);
  EXPECT_FALSE(completion.empty());
}

}  // namespace
}  // namespace ps

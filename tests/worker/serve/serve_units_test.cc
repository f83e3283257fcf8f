// psserve's parts without a model: sampling against its reference, chat templates, request
// validation (every malformed field named), incremental text with stop sequences, and token
// log-probabilities against their reference and in OpenAI's shapes.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <random>

#include "tests/worker/eval/char_tokenizer.h"
#include "worker/serve/chat_template.h"
#include "worker/serve/incremental_text.h"
#include "worker/serve/logit_adjust.h"
#include "worker/serve/logprobs_json.h"
#include "worker/serve/request_parse.h"
#include "worker/serve/sampler.h"
#include "worker/serve/token_logprobs.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps::serve {
namespace {

TEST(Sampler, GreedyIsTheFirstMaximum) {
  std::mt19937_64 rng(0);
  auto logits = torch::tensor({1.0f, 3.0f, -2.0f, 3.0f});
  EXPECT_EQ(SampleToken(logits, {0.0, 1.0}, rng), 1);
  EXPECT_EQ(SampleToken(torch::tensor({-INFINITY, -1.0f}), {0.0, 1.0}, rng), 1);
}

TEST(Sampler, NucleusMatchesTheObviousComputation) {
  auto logits = torch::tensor({2.0f, 1.0f, 0.0f, -1.0f});
  // Temperature 0.5: weights e^{4}, e^{2}, e^{0}, e^{-2}.
  const double w[4] = {std::exp(4.0), std::exp(2.0), 1.0, std::exp(-2.0)};
  const double z = w[0] + w[1] + w[2] + w[3];
  auto p = NucleusProbabilities(logits, {0.5, 1.0});
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(p[i], w[i] / z, 1e-12);
  // top_p 0.9: token 0 has 0.865 of the mass, so tokens 0 and 1 are kept, renormalised.
  p = NucleusProbabilities(logits, {0.5, 0.9});
  EXPECT_NEAR(p[0], w[0] / (w[0] + w[1]), 1e-12);
  EXPECT_NEAR(p[1], w[1] / (w[0] + w[1]), 1e-12);
  EXPECT_EQ(p[2], 0.0);
  EXPECT_EQ(p[3], 0.0);
  // A tiny top_p keeps exactly the most likely token.
  p = NucleusProbabilities(logits, {1.0, 1e-9});
  EXPECT_EQ(p[0], 1.0);
}

TEST(Sampler, SamplingFollowsTheDistributionAndSeedsRepeat) {
  auto logits = torch::tensor({0.0f, std::log(3.0f), -INFINITY, std::log(6.0f)});  // 0.1 .3 0 .6
  std::mt19937_64 rng(42);
  std::map<int, int> counts;
  const int n = 20000;
  for (int i = 0; i < n; ++i) ++counts[SampleToken(logits, {1.0, 1.0}, rng)];
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / double(n), 0.1, 0.015);
  EXPECT_NEAR(counts[1] / double(n), 0.3, 0.015);
  EXPECT_NEAR(counts[3] / double(n), 0.6, 0.015);
  std::mt19937_64 a(7), b(7);
  for (int i = 0; i < 50; ++i)
    EXPECT_EQ(SampleToken(logits, {0.8, 0.95}, a), SampleToken(logits, {0.8, 0.95}, b));
}

TEST(ChatTemplate, FamiliesAreRecognisedAndRendered) {
  EXPECT_EQ(DetectChatTemplate(""), ChatTemplate::kPlain);
  EXPECT_EQ(DetectChatTemplate("{% for m in messages %}<|im_start|>..."), ChatTemplate::kChatMl);
  EXPECT_EQ(DetectChatTemplate("...[INST] ... [/INST]"), ChatTemplate::kLlama2);
  EXPECT_EQ(DetectChatTemplate("<|start_header_id|>"), ChatTemplate::kLlama3);
  const std::vector<ChatMessage> m = {{"system", "Be brief."}, {"user", "Hi"}};
  EXPECT_EQ(RenderChat(ChatTemplate::kPlain, m), "System: Be brief.\nUser: Hi\nAssistant:");
  EXPECT_EQ(RenderChat(ChatTemplate::kChatMl, m),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(RenderChat(ChatTemplate::kLlama2, m),
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]");
  EXPECT_EQ(RenderChat(ChatTemplate::kLlama2, {{"user", "a"}, {"assistant", "b"}, {"user", "c"}}),
            "[INST] a [/INST] b </s><s>[INST] c [/INST]");
  EXPECT_THROW(RenderChat(ChatTemplate::kPlain, {{"tool", "x"}}), Error);
  EXPECT_THROW(RenderChat(ChatTemplate::kPlain, {}), Error);
}

std::string ParamOf(const std::string& body, bool chat = false, int64_t max_len = 64) {
  testing::ByteTokenizer tok;
  ParseContext ctx{&tok, ChatTemplate::kPlain, max_len};
  try {
    if (chat) {
      ParseChatRequest(body, ctx);
    } else {
      ParseCompletionRequest(body, ctx);
    }
  } catch (const BadRequest& e) {
    return e.param().empty() ? "<body>" : e.param();
  }
  return "(accepted)";
}

// ParamOf for a chat request of one user message and the fields `extra`.
std::string ChatParamOf(const std::string& extra) {
  return ParamOf(R"({"messages": [{"role": "user", "content": "x"}], )" + extra + "}", true);
}

TEST(RequestParse, MalformedFieldsAreNamed) {
  EXPECT_EQ(ParamOf("{not json"), "<body>");
  EXPECT_EQ(ParamOf("[1, 2]"), "<body>");
  EXPECT_EQ(ParamOf("{}"), "prompt");
  EXPECT_EQ(ParamOf(R"({"prompt": 5})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"prompt": ["a", "b"]})"), "(accepted)");  // two prompts
  EXPECT_EQ(ParamOf(R"({"prompt": [1, 999]})"), "prompt");        // outside the vocabulary
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "max_tokens": 0})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "max_tokens": "9"})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "max_tokens": 100})"), "max_tokens");  // > context
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "temperature": 2.5})"), "temperature");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "top_p": 0})"), "top_p");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "seed": 1.5})"), "seed");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "stop": ["a","b","c","d","e"]})"), "stop");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "stop": [""]})"), "stop");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "stream": "yes"})"), "stream");
  EXPECT_EQ(ParamOf(R"({"prompt": ")" + std::string(80, 'x') + R"("})"), "prompt");  // too long
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "max_tokens": 8, "stop": "x", "seed": 3})"), "(accepted)");
  EXPECT_EQ(ParamOf(R"({"prompt": [5, 6, 7]})"), "(accepted)");
  EXPECT_EQ(ParamOf(R"({"prompt": [[5, 6, 7]]})"), "(accepted)");    // a batch of one
  EXPECT_EQ(ParamOf(R"({"prompt": [[5, 6], [7]]})"), "(accepted)");  // two prompts
  EXPECT_EQ(ParamOf(R"({"prompt": ["a", [7]]})"), "(accepted)");
  EXPECT_EQ(ParamOf(R"({"prompt": ["a", 7]})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"prompt": []})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "n": 0})"), "n");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "n": 65})"), "n");
  EXPECT_EQ(ParamOf(R"({"prompt": ["a", "b", "c"], "n": 22})"), "n");  // 66 choices
  EXPECT_EQ(ParamOf(R"({"prompt": ["a", "b", "c"], "n": 21})"), "(accepted)");
  EXPECT_EQ(ParamOf(R"({"prompt": ["a", "b"], "max_tokens": 63})"), "max_tokens");  // each must fit
  EXPECT_EQ(ParamOf(R"({"prompt": [[5, 999]]})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"prompt": [[]]})"), "prompt");
  // A prompt that fills the context: only to score it (echo, nothing generated).
  EXPECT_EQ(ParamOf(R"({"prompt": ")" + std::string(63, 'x') + R"("})"), "prompt");
  EXPECT_EQ(ParamOf(R"({"prompt": ")" + std::string(63, 'x') + R"(", "echo": true})"),
            "(accepted)");
  EXPECT_EQ(
      ParamOf(R"({"prompt": ")" + std::string(63, 'x') + R"(", "echo": true, "max_tokens": 1})"),
      "max_tokens");
  EXPECT_EQ(ParamOf(R"({"messages": "hi"})", true), "messages");
  EXPECT_EQ(ParamOf(R"({"messages": []})", true), "messages");
  EXPECT_EQ(ParamOf(R"({"messages": [{"role": "robot", "content": "x"}]})", true), "messages");
  EXPECT_EQ(ParamOf(R"({"messages": [{"role": "user", "content": 3}]})", true), "messages");
  EXPECT_EQ(
      ParamOf(R"({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": -1})",
              true),
      "max_completion_tokens");
  EXPECT_EQ(
      ParamOf(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]})",
              true),
      "(accepted)");
  // Logit adjustments, and OpenAI fields this server does not implement, are checked.
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "frequency_penalty": 3})"), "frequency_penalty");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "presence_penalty": -2.5})"), "presence_penalty");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "repetition_penalty": 0})"), "repetition_penalty");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logit_bias": [1]})"), "logit_bias");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logit_bias": {"x": 1}})"), "logit_bias");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logit_bias": {"999": 1}})"), "logit_bias");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logit_bias": {"5": 101}})"), "logit_bias");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logit_bias": {"5": -100, "6": 2.5},
                        "frequency_penalty": 1, "presence_penalty": -1, "repetition_penalty": 1.2})"),
            "(accepted)");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "best_of": 3})"), "best_of");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "suffix": "end"})"), "suffix");
  EXPECT_EQ(ChatParamOf(R"("tools": [{"type": "function"}])"), "tools");
  EXPECT_EQ(ChatParamOf(R"("response_format": {"type": "json_object"})"), "response_format");
  EXPECT_EQ(ChatParamOf(R"("response_format": {"type": "text"}, "tools": [])"), "(accepted)");
  // logprobs: completions take 0..20 alternatives, and max_tokens 0 only with echo; chat takes
  // logprobs true/false and top_logprobs 0..20 with it.
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logprobs": 21})"), "logprobs");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logprobs": -1})"), "logprobs");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "logprobs": true})"), "logprobs");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "echo": 1})"), "echo");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "max_tokens": 0, "logprobs": 1})"), "max_tokens");
  EXPECT_EQ(ParamOf(R"({"prompt": "hi", "max_tokens": 0, "echo": true, "logprobs": 5})"),
            "(accepted)");
  EXPECT_EQ(ChatParamOf(R"("logprobs": 3)"), "logprobs");
  EXPECT_EQ(ChatParamOf(R"("top_logprobs": 2)"), "top_logprobs");
  EXPECT_EQ(ChatParamOf(R"("logprobs": true, "top_logprobs": 21)"), "top_logprobs");
  EXPECT_EQ(ChatParamOf(R"("logprobs": true, "top_logprobs": 20)"), "(accepted)");
}

TEST(RequestParse, DefaultsAndValues) {
  testing::ByteTokenizer tok;
  ParseContext ctx{&tok, ChatTemplate::kPlain, 64};
  auto r = ParseCompletionRequest(R"({"prompt": "ab"})", ctx)[0];
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{1, 'a' + 3, 'b' + 3}));  // BOS first
  EXPECT_EQ(r.max_tokens, 16);
  EXPECT_EQ(r.sampling.temperature, 1.0);
  EXPECT_FALSE(r.stream);
  r = ParseCompletionRequest(
      R"({"prompt": "ab", "temperature": 0, "top_p": 0.5, "seed": 9, "stop": "\n", "stream": true,
          "stream_options": {"include_usage": true}})",
      ctx)[0];
  EXPECT_EQ(r.sampling.temperature, 0.0);
  EXPECT_EQ(r.sampling.top_p, 0.5);
  EXPECT_EQ(r.seed, 9u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"\n"}));
  EXPECT_TRUE(r.stream && r.include_usage);
  auto c = ParseChatRequest(R"({"messages": [{"role": "user", "content": "hi"}]})", ctx)[0];
  EXPECT_EQ(tok.Decode(c.prompt_ids), "User: hi\nAssistant:");
  EXPECT_EQ(c.max_tokens, 64 - static_cast<int64_t>(c.prompt_ids.size()));
  EXPECT_EQ(c.stop, (std::vector<std::string>{"\nUser:"}));  // the plain template's turn end
  EXPECT_EQ(c.logprobs, -1);
  EXPECT_EQ(r.logprobs, -1);
  EXPECT_FALSE(r.echo);
  // Echo: the prompt as given (a string), or its ids decoded.
  r = ParseCompletionRequest(R"({"prompt": "ab", "echo": true, "logprobs": 0, "max_tokens": 0})",
                             ctx)[0];
  EXPECT_TRUE(r.echo);
  EXPECT_EQ(r.echo_text, "ab");
  EXPECT_EQ(r.logprobs, 0);
  EXPECT_EQ(r.max_tokens, 0);
  r = ParseCompletionRequest(R"({"prompt": [100, 101], "echo": true})", ctx)[0];
  EXPECT_EQ(r.echo_text, tok.Decode({100, 101}));
  r = ParseCompletionRequest(R"({"prompt": [[100, 101]], "echo": true})", ctx)[0];
  EXPECT_EQ(r.prompt_ids, (std::vector<int32_t>{100, 101}));
  EXPECT_EQ(r.echo_text, tok.Decode({100, 101}));
  r = ParseCompletionRequest(R"({"prompt": ["ab"], "echo": true})", ctx)[0];
  EXPECT_EQ(r.echo_text, "ab");
  c = ParseChatRequest(R"({"messages": [{"role": "user", "content": "hi"}], "logprobs": true})",
                       ctx)[0];
  EXPECT_EQ(c.logprobs, 0);
  c = ParseChatRequest(
      R"({"messages": [{"role": "user", "content": "hi"}], "logprobs": true, "top_logprobs": 4})",
      ctx)[0];
  EXPECT_EQ(c.logprobs, 4);
  r = ParseCompletionRequest(
      R"({"prompt": "ab", "logit_bias": {"7": -100}, "frequency_penalty": 0.5,
          "presence_penalty": 0.25, "repetition_penalty": 1.5})",
      ctx)[0];
  EXPECT_EQ(r.adjust.logit_bias, (std::map<int32_t, float>{{7, -100.0f}}));
  EXPECT_EQ(r.adjust.frequency_penalty, 0.5);
  EXPECT_EQ(r.adjust.presence_penalty, 0.25);
  EXPECT_EQ(r.adjust.repetition_penalty, 1.5);
}

TEST(LogitAdjust, BiasRepetitionFrequencyAndPresenceByHand) {
  // Prompt {1, 2}, generated {2, 3, 3}; token 4 is NaN, token 5 -0.0.
  auto logits = torch::tensor({1.0f, 2.0f, -1.0f, 4.0f, NAN, -0.0f});
  LogitAdjust a;
  EXPECT_TRUE(IsIdentity(a));
  AdjustLogits(logits, a, {1, 2}, {2, 3, 3});  // identity: nothing changes
  EXPECT_EQ(logits[0].item<float>(), 1.0f);
  a.logit_bias = {{0, 1.5f}, {5, -100.0f}, {3, 0.5f}};
  a.repetition_penalty = 2.0;  // tokens 1, 2, 3 (prompt or generated)
  a.frequency_penalty = 0.5;   // generated: 2 once, 3 twice
  a.presence_penalty = 0.25;
  EXPECT_FALSE(IsIdentity(a));
  AdjustLogits(logits, a, {1, 2}, {2, 3, 3});
  const std::vector<float> want = {
      1.0f + 1.5f,                // bias only
      2.0f / 2,                   // in the prompt: positive, divided
      -1.0f * 2 - 0.5f - 0.25f,   // negative, multiplied; generated once
      (4.0f + 0.5f) / 2 - 1.25f,  // bias, then divided; generated twice
      NAN,                        // NaN stays NaN
      -100.0f};                   // -0.0 + bias
  for (int64_t i = 0; i < 6; ++i) {
    if (std::isnan(want[static_cast<size_t>(i)])) {
      EXPECT_TRUE(std::isnan(logits[i].item<float>()));
    } else {
      EXPECT_FLOAT_EQ(logits[i].item<float>(), want[static_cast<size_t>(i)]) << i;
    }
  }
  // -0.0 and 0 under the repetition penalty stay zeros; ids outside the vocabulary are ignored.
  auto z = torch::tensor({-0.0f, 0.0f});
  LogitAdjust r;
  r.repetition_penalty = 3.0;
  r.logit_bias = {{7, 1.0f}};
  AdjustLogits(z, r, {0, 1, 9}, {});
  EXPECT_EQ(z[0].item<float>(), 0.0f);
  EXPECT_EQ(z[1].item<float>(), 0.0f);
  auto bad = torch::zeros({2, 3});
  EXPECT_THROW(AdjustLogits(bad, r, {}, {}), Error);
}

TEST(RequestParse, ChoicesArePromptMajorWithSeedsSpread) {
  testing::ByteTokenizer tok;
  ParseContext ctx{&tok, ChatTemplate::kPlain, 64};
  const auto c = ParseCompletionRequest(
      R"({"prompt": ["ab", [100, 101, 102]], "n": 3, "seed": 9, "echo": true})", ctx);
  ASSERT_EQ(c.size(), 6u);
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_EQ(c[static_cast<size_t>(i)].index, i);
    EXPECT_EQ(c[static_cast<size_t>(i)].n, 3);
    EXPECT_EQ(c[static_cast<size_t>(i)].seed, 9u + static_cast<uint64_t>(i % 3));
    EXPECT_EQ(c[static_cast<size_t>(i)].prompt_ids, c[i < 3 ? 0 : 3].prompt_ids);
  }
  EXPECT_EQ(c[0].prompt_ids, (std::vector<int32_t>{1, 'a' + 3, 'b' + 3}));  // BOS first
  EXPECT_EQ(c[3].prompt_ids, (std::vector<int32_t>{100, 101, 102}));        // ids as given
  EXPECT_EQ(c[1].echo_text, "ab");
  EXPECT_EQ(c[4].echo_text, tok.Decode({100, 101, 102}));
  // Each prompt gets its own default max_tokens (16, or what its context leaves).
  const auto d =
      ParseCompletionRequest(R"({"prompt": ["ab", ")" + std::string(55, 'x') + R"("]})", ctx);
  EXPECT_EQ(d[0].max_tokens, 16);
  EXPECT_EQ(d[1].max_tokens, 64 - 56);
  const auto chat =
      ParseChatRequest(R"({"messages": [{"role": "user", "content": "hi"}], "n": 2})", ctx);
  ASSERT_EQ(chat.size(), 2u);
  EXPECT_FALSE(chat[1].seed.has_value());  // unseeded: each its own random seed
  // The server's limit (its queue) caps the choices.
  ParseContext small{&tok, ChatTemplate::kPlain, 64, 4};
  EXPECT_THROW(ParseCompletionRequest(R"({"prompt": ["a", "b"], "n": 3})", small), BadRequest);
}

// The slow, obvious reference of ScoreRows: log-softmax in double, row by row.
std::vector<double> LogSoftmaxRef(const std::vector<float>& row) {
  double m = -INFINITY;
  for (float v : row) m = std::max(m, static_cast<double>(v));
  double z = 0;
  for (float v : row) z += std::exp(static_cast<double>(v) - m);
  std::vector<double> out;
  for (float v : row) out.push_back(static_cast<double>(v) - m - std::log(z));
  return out;
}

TEST(TokenLogprobs, ScoreRowsMatchesTheReferenceOnRandomAndAdversarialRows) {
  const int64_t vocab = 40;
  // 300 rows: more than one 256-row block. Rows 0-4 are adversarial: all equal (ties), zeros
  // of both signs, huge values, tiny values, a NaN.
  torch::manual_seed(3);
  auto logits = torch::randn({300, vocab}) * 4;
  logits[0].fill_(1.5f);
  logits[1].fill_(0.0f);
  logits[1].slice(0, 0, vocab, 2).fill_(-0.0f);
  logits[1][7] = 1.0f;
  logits[2][3] = 1e30f;
  logits[2][4] = -1e30f;
  logits[2][5] = 1e30f;
  logits[3].fill_(1e-38f);
  logits[3][9] = -1e-38f;
  logits[4][11] = NAN;
  std::vector<int32_t> ids;
  for (int64_t r = 0; r < logits.size(0); ++r) ids.push_back(static_cast<int32_t>((r * 7) % vocab));
  const int64_t top = 5;
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    const auto in = logits.to(dtype);
    const auto got = ScoreRows(in, ids, top);
    ASSERT_EQ(got.size(), ids.size());
    const auto as_float = in.to(torch::kFloat).contiguous();
    for (int64_t r = 0; r < in.size(0); ++r) {
      const auto& t = got[static_cast<size_t>(r)];
      EXPECT_EQ(t.id, ids[static_cast<size_t>(r)]);
      ASSERT_TRUE(t.logprob.has_value());
      ASSERT_EQ(t.top.size(), static_cast<size_t>(top));
      if (r == 4) {  // NaN logits: no distribution
        EXPECT_TRUE(std::isnan(*t.logprob));
        continue;
      }
      const float* p = as_float.data_ptr<float>() + r * vocab;
      const auto ref = LogSoftmaxRef(std::vector<float>(p, p + vocab));
      EXPECT_NEAR(*t.logprob, ref[static_cast<size_t>(t.id)], 1e-5) << r;
      // The top entries: the `top` largest reference values, most likely first, equal values by
      // lower id.
      std::vector<int32_t> order(vocab);
      for (int32_t i = 0; i < vocab; ++i) order[static_cast<size_t>(i)] = i;
      std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return ref[static_cast<size_t>(a)] > ref[static_cast<size_t>(b)];
      });
      for (int64_t k = 0; k < top; ++k) {
        const auto [id, lp] = t.top[static_cast<size_t>(k)];
        EXPECT_NEAR(lp, ref[static_cast<size_t>(order[static_cast<size_t>(k)])], 1e-5) << r;
        EXPECT_NEAR(lp, ref[static_cast<size_t>(id)], 1e-5) << r;
        if (k > 0) {
          const auto [prev_id, prev_lp] = t.top[static_cast<size_t>(k - 1)];
          EXPECT_TRUE(prev_lp > lp || (prev_lp == lp && prev_id < id)) << r << " " << k;
        }
      }
    }
    // Ties: all equal, so ids 0..4 in order, each -log(vocab).
    for (int64_t k = 0; k < top; ++k) {
      EXPECT_EQ(got[0].top[static_cast<size_t>(k)].first, k);
      EXPECT_NEAR(got[0].top[static_cast<size_t>(k)].second, -std::log(double(vocab)), 1e-5);
    }
  }
  EXPECT_TRUE(ScoreRows(logits, ids, 0)[7].top.empty());
  EXPECT_THROW(ScoreRows(logits, ids, vocab + 1), Error);
  ids[2] = static_cast<int32_t>(vocab);
  EXPECT_THROW(ScoreRows(logits, ids, 1), Error);
  EXPECT_THROW(ScoreRows(logits, {1, 2}, 1), Error);
}

TEST(TokenLogprobs, JsonInOpenAIsShapes) {
  testing::ByteTokenizer tok;
  // Tokens "a" (first of an echoed prompt: nothing predicts it), "b", then "c".
  const int32_t a = 'a' + 3, b = 'b' + 3, c = 'c' + 3, x = 'x' + 3;
  const std::vector<TokenLogprob> prompt = {{a, std::nullopt, {}}, {b, -0.5f, {{x, -0.25f}}}};
  const std::vector<TokenLogprob> gen = {{c, -1.0f, {{c, -1.0f}, {x, -2.0f}}}};
  LogprobsJson completions(tok, false, {});
  nlohmann::json j = completions.Format(prompt);
  EXPECT_EQ(j["tokens"], nlohmann::json({"a", "b"}));
  EXPECT_TRUE(j["token_logprobs"][0].is_null());
  EXPECT_EQ(j["token_logprobs"][1], -0.5);
  EXPECT_TRUE(j["top_logprobs"][0].is_null());
  // The most likely alternatives and the chosen token, always.
  EXPECT_EQ(j["top_logprobs"][1], nlohmann::json({{"x", -0.25}, {"b", -0.5}}));
  EXPECT_EQ(j["text_offset"], nlohmann::json({0, 1}));
  j = completions.Format(gen);  // offsets go on from the earlier tokens
  EXPECT_EQ(j["text_offset"], nlohmann::json({2}));
  EXPECT_EQ(j["top_logprobs"][0], nlohmann::json({{"c", -1.0}, {"x", -2.0}}));

  LogprobsJson chat(tok, true, {a, b});
  j = chat.Format(gen);
  ASSERT_EQ(j["content"].size(), 1u);
  const auto& e = j["content"][0];
  EXPECT_EQ(e["token"], "c");
  EXPECT_EQ(e["logprob"], -1.0);
  EXPECT_EQ(e["bytes"], nlohmann::json({'c'}));
  EXPECT_EQ(e["top_logprobs"][1],
            nlohmann::json({{"token", "x"}, {"logprob", -2.0}, {"bytes", {'x'}}}));
  // A token's text in context; a NaN logprob is null (JSON has no NaN).
  EXPECT_EQ(TokenText(tok, {a, b}, c), "c");
  j = chat.Format({{c, NAN, {}}});
  EXPECT_TRUE(j["content"][0]["logprob"].is_null());
}

std::vector<int32_t> Ids(const std::string& s) { return testing::ByteTokenizer().Encode(s); }

TEST(IncrementalText, StopSequencesCutAndHoldBack) {
  testing::ByteTokenizer tok;
  IncrementalText t(tok, Ids("P:"), {"END", "xy"});
  std::string sent;
  for (char c : std::string("abEN")) sent += t.Add(c + 3);
  EXPECT_EQ(sent, "ab");  // "EN" could start "END": held back
  sent += t.Add('x' + 3);
  EXPECT_EQ(sent, "abEN");  // "ENx" no longer can; "x" could start "xy"
  sent += t.Add('E' + 3);
  sent += t.Add('N' + 3);
  sent += t.Add('D' + 3);
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(sent, "abENx");
  EXPECT_EQ(t.text(), "abENx");
  EXPECT_EQ(t.Add('z' + 3), "");  // nothing after a stop

  IncrementalText u(tok, Ids(""), {"END"});
  std::string all;
  for (char c : std::string("aEN")) all += u.Add(c + 3);
  all += u.Flush();  // the end of the request releases what was held
  EXPECT_EQ(all, "aEN");
  EXPECT_FALSE(u.stopped());
}

// A tokenizer that counts the ids it decodes.
class CountingTokenizer : public Tokenizer {
 public:
  explicit CountingTokenizer(const Tokenizer& t) : t_(t) {}
  std::vector<int32_t> Encode(std::string_view text) const override { return t_.Encode(text); }
  std::string Decode(const std::vector<int32_t>& ids) const override {
    decoded += static_cast<int64_t>(ids.size());
    return t_.Decode(ids);
  }
  int32_t vocab_size() const override { return t_.vocab_size(); }
  std::optional<int32_t> TokenToId(std::string_view token) const override {
    return t_.TokenToId(token);
  }
  std::string IdToToken(int32_t id) const override { return t_.IdToToken(id); }
  mutable int64_t decoded = 0;

 private:
  const Tokenizer& t_;
};

// The reference: the completion's text from decoding prompt and completion together.
std::string WholeDecode(const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const std::vector<int32_t>& completion) {
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), completion.begin(), completion.end());
  const std::string full = tok.Decode(all), p = tok.Decode(prompt);
  if (full.compare(0, p.size(), p) == 0) return full.substr(p.size());
  return tok.Decode(completion);
}

// The text after every token equals decoding the whole sequence (spaces, byte tokens and split
// UTF-8 characters included), what is sent adds up to it, and a token costs a decode of a few
// tokens (decoding the whole sequence for each token cost about 8 ms of CPU per decode step at 32
// streams: bench/detokenize_bench).
TEST(IncrementalText, SameTextAsTheWholeDecodeForAFewTokensEach) {
  const std::filesystem::path dir = std::filesystem::path(PS_SHARED_DATA) / "codelm-19m";
  if (!std::filesystem::exists(dir / "config.json")) GTEST_SKIP() << "no " << dir;
  const auto real = LoadTokenizer(dir);
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> any(0, real->vocab_size() - 1);
  for (int prompt_len : {0, 1, 300}) {
    std::vector<int32_t> prompt;
    for (int i = 0; i < prompt_len; ++i) prompt.push_back(any(rng));
    CountingTokenizer tok(*real);
    IncrementalText t(tok, prompt, {});
    tok.decoded = 0;
    std::vector<int32_t> completion;
    std::string sent;
    for (int i = 0; i < 200; ++i) {
      completion.push_back(any(rng));
      sent += t.Add(completion.back());
      ASSERT_EQ(t.text(), WholeDecode(*real, prompt, completion))
          << "prompt " << prompt_len << ", token " << i;
    }
    sent += t.Flush();
    EXPECT_EQ(sent, t.text());
    EXPECT_LE(tok.decoded, 200 * 16) << "prompt " << prompt_len;
  }
}

}  // namespace
}  // namespace ps::serve

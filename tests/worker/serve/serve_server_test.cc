// psserve end to end on the default model (codelm-19m, CPU): greedy answers equal
// GreedyGenerate, `pstool generate` and the dense model's own argmax; logprobs (with echo, a
// prompt's scores) equal the dense forward's log-softmax; streaming; 8 concurrent
// requests decoded in shared batches; 4xx for malformed requests and 429 for a full queue;
// Prometheus metrics; and a compressed-tensors artifact of a `W * mask` checkpoint served.
#include <gtest/gtest.h>
#include <httplib.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "common/file_util.h"
#include "tests/testing/temp_dir.h"
#include "worker/eval/generate.h"
#include "worker/eval/multiple_choice.h"
#include "worker/eval/perplexity.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/pack/pack_model.h"
#include "worker/serve/http_server.h"
#include "worker/serve/logit_adjust.h"
#include "worker/serve/model_loader.h"
#include "worker/serve/score_client.h"
#include "worker/sparse/native_pack.h"

namespace ps::serve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

fs::path Codelm() { return fs::path(PS_SHARED_DATA) / "codelm-19m"; }

// The whole server in this process, on a free port.
class Server {
 public:
  Server(const LoadSpec& spec, int64_t max_batch, int64_t max_waiting = 64)
      : loaded_(LoadModel(spec)),
        engine_(loaded_.model, EngineOptions{max_batch, 256, true}),
        scheduler_(engine_, *loaded_.tokenizer, metrics_, SchedulerOptions{max_waiting}),
        frontend_(scheduler_, metrics_,
                  ServedModel{loaded_.name, loaded_.artifact, loaded_.tokenizer.get(),
                              ChatTemplateOf(loaded_.tokenizer_dir), 256},
                  HttpOptions{"127.0.0.1", 0, 32}) {
    port_ = frontend_.Bind();
    thread_ = std::thread([this] { frontend_.Listen(); });
  }
  ~Server() {
    frontend_.Stop();
    thread_.join();
    scheduler_.Stop();
  }
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_read_timeout(300, 0);
    return c;
  }
  LoadedModel& loaded() { return loaded_; }
  int port() const { return port_; }

 private:
  LoadedModel loaded_;
  Engine engine_;
  ServeMetrics metrics_;
  Scheduler scheduler_;
  HttpFrontend frontend_;
  int port_ = 0;
  std::thread thread_;
};

LoadSpec CpuSpec(const fs::path& dir) {
  LoadSpec s;
  s.model = dir;
  return s;
}

json PostJson(httplib::Client& c, const std::string& path, const json& body, int* status) {
  auto r = c.Post(path.c_str(), body.dump(), "application/json");
  if (!r) {
    *status = -1;
    return {};
  }
  *status = r->status;
  return json::parse(r->body, nullptr, false);
}

// What a shell command prints on stdout, and its exit status into `status`.
std::string RunCommand(const std::string& cmd, int* status = nullptr) {
  std::string out;
  int rc = -1;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, k);
    rc = pclose(p);
  }
  if (status) *status = rc;
  return out;
}

std::vector<int32_t> TokenIds(const json& response) {
  return response["choices"][0]["token_ids"].get<std::vector<int32_t>>();
}

class ServeCodelm : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(Codelm() / "config.json")) return;
    server_ = new Server(CpuSpec(Codelm()), 8);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << "no " << Codelm();
  }
  static Server* server_;
};
Server* ServeCodelm::server_ = nullptr;

const char* kPrompt = "def fibonacci(n):";

// Greedy completions equal GreedyGenerate (what `pstool generate` runs), pstool generate's own
// output, and the argmax of the dense model's forward over the whole sequence (no cache).
TEST_F(ServeCodelm, GreedyCompletionEqualsPstoolGenerateAndTheDenseForward) {
  auto c = server_->Client();
  int status = 0;
  const int n = 24;
  json r = PostJson(c, "/v1/completions",
                    {{"prompt", kPrompt},
                     {"max_tokens", n},
                     {"temperature", 0},
                     {"return_token_ids", true},
                     {"ignore_eos", true}},
                    &status);
  ASSERT_EQ(status, 200) << r.dump();
  const auto got = TokenIds(r);
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  auto& tok = *server_->loaded().tokenizer;
  const auto prompt = tok.EncodeForModel(kPrompt);
  EXPECT_EQ(r["usage"]["prompt_tokens"], prompt.size());
  EXPECT_EQ(r["usage"]["completion_tokens"], n);

  auto model = LoadLlama(Codelm());
  const auto ref = GreedyGenerate(*model, prompt, n);  // no EOS stop, as ignore_eos
  EXPECT_EQ(got, ref);

  // The dense forward without a cache over prompt + completion: each position's argmax is the
  // next token.
  std::vector<int64_t> all(prompt.begin(), prompt.end());
  all.insert(all.end(), got.begin(), got.end() - 1);
  torch::NoGradGuard ng;
  const auto logits = model->forward(torch::tensor(all).unsqueeze(0));
  const auto arg = logits[0].argmax(-1);
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(arg[static_cast<int64_t>(prompt.size()) - 1 + i].item<int64_t>(), got[i]) << i;

  // The text is the decoded continuation, and `pstool generate` prints prompt + it.
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), got.begin(), got.end());
  const std::string text = r["choices"][0]["text"];
  EXPECT_EQ(tok.Decode(prompt) + text, tok.Decode(seq));
  const fs::path pstool = fs::path(PS_BINARY_DIR) / "worker" / "tools" / "pstool";
  if (fs::exists(pstool) && !std::count(got.begin(), got.end(), *tok.eos_id())) {
    const std::string cmd = pstool.string() + " generate --model " + Codelm().string() +
                            " --prompt '" + kPrompt + "' --max-new " + std::to_string(n) +
                            " 2>/dev/null";
    EXPECT_EQ(RunCommand(cmd), tok.Decode(seq) + "\n");
  }
}

// log_softmax of the dense model's forward (no cache) over `ids`: row i scores token i + 1.
torch::Tensor DenseLogSoftmax(const std::vector<int32_t>& ids) {
  auto model = LoadLlama(Codelm());
  torch::NoGradGuard ng;
  std::vector<int64_t> all(ids.begin(), ids.end());
  return torch::log_softmax(model->forward(torch::tensor(all).unsqueeze(0))[0].to(torch::kFloat),
                            -1);
}

// Scoring a text (what lm-evaluation-harness's loglikelihood requests do): echo + logprobs with
// max_tokens 0 gives each prompt token's log-probability under the dense model's forward.
TEST_F(ServeCodelm, EchoedPromptLogprobsEqualTheDenseForward) {
  auto c = server_->Client();
  int status = 0;
  const json r = PostJson(
      c, "/v1/completions",
      {{"prompt", kPrompt}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 3}, {"temperature", 0}},
      &status);
  ASSERT_EQ(status, 200) << r.dump();
  const json& ch = r["choices"][0];
  EXPECT_EQ(ch["text"], kPrompt);
  EXPECT_EQ(ch["finish_reason"], "length");
  EXPECT_EQ(r["usage"]["completion_tokens"], 0);
  auto& tok = *server_->loaded().tokenizer;
  const auto ids = tok.EncodeForModel(kPrompt);
  const json& lp = ch["logprobs"];
  ASSERT_EQ(lp["tokens"].size(), ids.size()) << lp.dump();
  ASSERT_EQ(lp["token_logprobs"].size(), ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  const auto ref = DenseLogSoftmax(ids);
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) {
    joined += lp["tokens"][i].get<std::string>();
    if (i == 0) continue;
    EXPECT_LE(lp["text_offset"][i - 1], lp["text_offset"][i]);
    const auto row = ref[static_cast<int64_t>(i) - 1];
    EXPECT_NEAR(lp["token_logprobs"][i].get<double>(), row[ids[i]].item<double>(), 1e-5) << i;
    // The 3 most likely (and the token itself): the largest is the row's maximum.
    const json& top = lp["top_logprobs"][i];
    EXPECT_GE(top.size(), 3u);
    EXPECT_LE(top.size(), 4u);
    double best = -INFINITY;
    for (const auto& [k, v] : top.items()) best = std::max(best, v.get<double>());
    EXPECT_NEAR(best, row.max().item<double>(), 1e-5) << i;
  }
  EXPECT_EQ(joined, kPrompt);  // each token's text in context: together, the prompt
}

// Generated tokens' logprobs: greedy, so each is the most likely at its position, and each
// equals the dense forward's over prompt + completion; streamed chunks carry the same; echo
// with generation scores prompt and completion together.
TEST_F(ServeCodelm, GeneratedTokensLogprobsEqualTheDenseForwardAndStreamAlike) {
  auto c = server_->Client();
  int status = 0;
  const int n = 8;
  const json body = {{"prompt", kPrompt}, {"max_tokens", n},          {"temperature", 0},
                     {"logprobs", 2},     {"return_token_ids", true}, {"ignore_eos", true}};
  const json r = PostJson(c, "/v1/completions", body, &status);
  ASSERT_EQ(status, 200) << r.dump();
  const auto got = TokenIds(r);
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  auto& tok = *server_->loaded().tokenizer;
  const auto prompt = tok.EncodeForModel(kPrompt);
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), got.begin(), got.end());
  const auto ref = DenseLogSoftmax(seq);
  const json& lp = r["choices"][0]["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), static_cast<size_t>(n));
  std::string joined;
  for (int i = 0; i < n; ++i) {
    const auto row = ref[static_cast<int64_t>(prompt.size()) - 1 + i];
    const double v = lp["token_logprobs"][i].get<double>();
    EXPECT_NEAR(v, row[got[i]].item<double>(), 1e-4) << i;
    EXPECT_NEAR(v, row.max().item<double>(), 1e-4) << i;  // greedy: the most likely
    double best = -INFINITY;
    for (const auto& [k, x] : lp["top_logprobs"][i].items()) best = std::max(best, x.get<double>());
    EXPECT_EQ(best, v) << i;  // is_greedy as lm-evaluation-harness checks it
    joined += lp["tokens"][i].get<std::string>();
  }
  EXPECT_EQ(joined, r["choices"][0]["text"]);
  EXPECT_EQ(lp["text_offset"][0], 0);

  // Streamed: the chunks' logprobs, in order, are the same.
  json sb = body;
  sb["stream"] = true;
  auto s = c.Post("/v1/completions", sb.dump(), "application/json");
  ASSERT_TRUE(s);
  json streamed = json::array(), offsets = json::array();
  std::istringstream in(s->body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("data: {", 0) != 0) continue;
    const json j = json::parse(line.substr(6));
    const json& l = j["choices"][0]["logprobs"];
    ASSERT_TRUE(l.is_object()) << line;
    for (const auto& v : l["token_logprobs"]) streamed.push_back(v);
    for (const auto& v : l["text_offset"]) offsets.push_back(v);
  }
  EXPECT_EQ(streamed, lp["token_logprobs"]);
  EXPECT_EQ(offsets, lp["text_offset"]);

  // Echo with generation: the prompt's tokens, then the completion's.
  json eb = body;
  eb["echo"] = true;
  const json e = PostJson(c, "/v1/completions", eb, &status);
  ASSERT_EQ(status, 200) << e.dump();
  const json& el = e["choices"][0]["logprobs"];
  ASSERT_EQ(el["token_logprobs"].size(), prompt.size() + n);
  EXPECT_EQ(e["choices"][0]["text"], kPrompt + r["choices"][0]["text"].get<std::string>());
  for (int i = 0; i < n; ++i)
    EXPECT_EQ(el["token_logprobs"][prompt.size() + i], lp["token_logprobs"][i]) << i;
}

// Requests asking for different numbers of alternatives share decode steps: each gets its own
// count, and the values it gets alone.
TEST_F(ServeCodelm, LogprobsOfBatchedRequestsAreTheirOwn) {
  const std::vector<int> counts = {0, 1, 4, -1};  // -1: no logprobs
  const auto one = [&](int k) {
    auto c = server_->Client();
    int status = 0;
    json body = {{"prompt", kPrompt}, {"max_tokens", 12}, {"temperature", 0}, {"ignore_eos", true}};
    if (k >= 0) body["logprobs"] = k;
    json r = PostJson(c, "/v1/completions", body, &status);
    EXPECT_EQ(status, 200) << r.dump();
    return r["choices"][0]["logprobs"];
  };
  std::vector<json> alone, together(counts.size());
  for (int k : counts) alone.push_back(one(k));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < counts.size(); ++i)
    threads.emplace_back([&, i] { together[i] = one(counts[i]); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < counts.size(); ++i) {
    if (counts[i] < 0) {
      EXPECT_TRUE(together[i].is_null());
      continue;
    }
    ASSERT_EQ(together[i]["token_logprobs"].size(), 12u);
    for (size_t t = 0; t < 12; ++t) {
      EXPECT_NEAR(together[i]["token_logprobs"][t].get<double>(),
                  alone[i]["token_logprobs"][t].get<double>(), 1e-4);
      // The k most likely and the chosen token (greedy: among them, so k keys; at least 1).
      EXPECT_EQ(together[i]["top_logprobs"][t].size(), std::max<size_t>(1, counts[i]))
          << together[i]["top_logprobs"][t].dump();
    }
  }
}

// `pstool eval --server` scores a text and a task through the server's prompt logprobs: the same
// perplexity and accuracy as the loaded model's (the prefill is the model's forward). A
// full-context window (256 tokens, the server's whole context) is accepted for scoring.
TEST_F(ServeCodelm, PstoolEvalThroughTheServerEqualsTheLoadedModel) {
  const fs::path pstool = fs::path(PS_BINARY_DIR) / "worker" / "tools" / "pstool";
  const fs::path eval = fs::path(PS_SHARED_DATA) / "code-eval.txt";
  if (!fs::exists(pstool) || !fs::exists(eval)) GTEST_SKIP() << "no pstool or " << eval;
  // The text's first 16 KiB: enough for 3 windows of 256 tokens, quick to tokenize.
  testing::TempDir dir("serve-eval");
  const fs::path text = dir / "eval.txt";
  WriteFileAtomic(text, ReadFile(eval).substr(0, 16384));
  auto model = LoadLlama(Codelm());
  auto& tok = *server_->loaded().tokenizer;
  PerplexityOptions opt;
  opt.ctx = 256;
  opt.max_windows = 3;
  opt.progress = false;
  const auto tokens = tok.EncodeForModel(ReadFile(text.string()));
  const PerplexityResult ref = Perplexity(*model, tokens, opt);
  // A small code task: which continuation the model prefers.
  const fs::path task = dir / "code_task.jsonl";
  WriteFileAtomic(
      task,
      R"j({"context": "def add(a, b):\n    return a", "choices": [" + b", " - b", " * b"], "label": 0}
{"context": "for i in range(", "choices": ["10):", "ten]", "}}"], "label": 0}
{"context": "import numpy as", "choices": [" np", " pandas", " ("], "label": 0}
{"context": "if x == 1:\n    print(", "choices": ["x)", "def", "]]"], "label": 0}
)j");
  McOptions mopt;
  mopt.max_length = 256;
  mopt.progress = false;
  const McResult task_ref = EvaluateMultipleChoice(*model, tok, LoadTaskFile(task.string()), mopt);
  const std::string cmd = pstool.string() + " eval --quiet --server http://127.0.0.1:" +
                          std::to_string(server_->port()) + " --model " + Codelm().string() +
                          " --ppl " + text.string() + " --ctx 256 --max-windows 3 --task " +
                          task.string() + " 2>&1";
  std::string out = RunCommand(cmd);
  const json j = json::parse(out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  const json& r = j["perplexity"][text.string()];
  EXPECT_EQ(r["windows"], 3);
  EXPECT_EQ(r["predicted_tokens"], ref.predicted_tokens);
  EXPECT_NEAR(r["mean_nll"].get<double>(), ref.mean_nll, 1e-9 * ref.mean_nll) << out;
  const json& t = j["tasks"]["code_task"];
  EXPECT_EQ(t["items"], 4);
  EXPECT_EQ(t["acc"], task_ref.acc) << out;
  EXPECT_EQ(t["acc_norm"], task_ref.acc_norm) << out;
  // Each choice's log-likelihood through the server's prompt logprobs equals the loaded model's.
  serve::ScoreClient client("http://127.0.0.1:" + std::to_string(server_->port()));
  const McResult via_server = EvaluateMultipleChoice(
      tok, LoadTaskFile(task.string()), mopt,
      [&](const std::vector<ContextContinuation>& requests) {
        std::vector<double> sums;
        for (const auto& q : requests)
          sums.push_back(client.SuffixLogprob(ScoredTokens(q, 256), q.second.size()));
        return sums;
      });
  ASSERT_EQ(via_server.loglikelihoods.size(), task_ref.loglikelihoods.size());
  for (size_t i = 0; i < via_server.loglikelihoods.size(); ++i)
    for (size_t c = 0; c < via_server.loglikelihoods[i].size(); ++c)
      EXPECT_NEAR(via_server.loglikelihoods[i][c], task_ref.loglikelihoods[i][c], 1e-4)
          << i << " " << c;
  // A window longer than the server's context is refused with the server's reason.
  const std::string too_long = pstool.string() + " eval --quiet --server http://127.0.0.1:" +
                               std::to_string(server_->port()) + " --model " + Codelm().string() +
                               " --ppl " + text.string() + " --ctx 300 --max-windows 1 2>&1";
  int rc = 0;
  out = RunCommand(too_long, &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("context is 256 tokens"), std::string::npos) << out;
}

// logit_bias and the penalties: greedy tokens equal a reference loop over the dense forward
// (no cache) with the same adjustments; a -100 bias on the plain answer's first token moves it.
TEST_F(ServeCodelm, LogitBiasAndPenaltiesGiveTheReferenceLoopsTokens) {
  // A prompt whose plain greedy answer repeats itself, so the penalties change every step.
  const char* kRepetitive = "x = [0, 0, 0, 0, 0, 0, 0, 0,";
  auto c = server_->Client();
  int status = 0;
  const int n = 10;
  json body = {{"prompt", kRepetitive},
               {"max_tokens", n},
               {"temperature", 0},
               {"return_token_ids", true},
               {"ignore_eos", true}};
  const json plain = PostJson(c, "/v1/completions", body, &status);
  ASSERT_EQ(status, 200) << plain.dump();
  const int32_t first = TokenIds(plain)[0];
  LogitAdjust a;
  a.logit_bias = {{first, -100.0f}};
  a.frequency_penalty = 2.0;
  a.presence_penalty = 1.0;
  a.repetition_penalty = 2.0;
  body["logit_bias"] = {{std::to_string(first), -100}};
  body["frequency_penalty"] = a.frequency_penalty;
  body["presence_penalty"] = a.presence_penalty;
  body["repetition_penalty"] = a.repetition_penalty;
  const json r = PostJson(c, "/v1/completions", body, &status);
  ASSERT_EQ(status, 200) << r.dump();
  const auto got = TokenIds(r);
  ASSERT_EQ(got.size(), static_cast<size_t>(n));
  EXPECT_NE(got[0], first);

  auto model = LoadLlama(Codelm());
  torch::NoGradGuard ng;
  const auto prompt = server_->loaded().tokenizer->EncodeForModel(kRepetitive);
  // `steps` adjusted steps, then plain greedy ones.
  auto reference = [&](int steps) {
    std::vector<int32_t> gen;
    for (int i = 0; i < n; ++i) {
      std::vector<int64_t> seq(prompt.begin(), prompt.end());
      seq.insert(seq.end(), gen.begin(), gen.end());
      torch::Tensor row =
          model->forward(torch::tensor(seq).unsqueeze(0))[0][-1].to(torch::kFloat).contiguous();
      if (i < steps) AdjustLogits(row, a, prompt, gen);
      gen.push_back(static_cast<int32_t>(row.argmax().item<int64_t>()));
    }
    return gen;
  };
  const auto gen = reference(n);
  EXPECT_EQ(got, gen);
  // The adjustments matter after the first token too, so the decode steps' are checked.
  EXPECT_NE(reference(1), gen);
}

// Several prompts and n choices in one request: choice prompt x n + k answers prompt `prompt`
// as a request of its own would (greedy: each of its n choices; seeded: with seed + k), streamed
// or not; usage counts each prompt once.
TEST_F(ServeCodelm, SeveralPromptsAndNChoicesAnswerAsSeparateRequests) {
  auto c = server_->Client();
  int status = 0;
  const std::vector<std::string> prompts = {kPrompt, "class Stack:"};
  // A body for `prompt`: greedy, or sampled with `seed`.
  auto body = [](const json& prompt, std::optional<int> seed) {
    json b = {{"prompt", prompt},
              {"max_tokens", 6},
              {"ignore_eos", true},
              {"return_token_ids", true},
              {"temperature", seed ? 0.9 : 0.0}};
    if (seed) b["seed"] = *seed;
    return b;
  };
  auto alone = [&](const std::string& p, std::optional<int> seed) {
    const json r = PostJson(c, "/v1/completions", body(p, seed), &status);
    EXPECT_EQ(status, 200) << r.dump();
    return r["choices"][0];
  };
  for (std::optional<int> seed : {std::optional<int>(), std::optional<int>(41)}) {
    json b = body(prompts, seed);
    b["n"] = 2;
    const json r = PostJson(c, "/v1/completions", b, &status);
    ASSERT_EQ(status, 200) << r.dump();
    ASSERT_EQ(r["choices"].size(), 4u);
    int64_t prompt_tokens = 0;
    for (size_t p = 0; p < prompts.size(); ++p) {
      prompt_tokens +=
          static_cast<int64_t>(server_->loaded().tokenizer->EncodeForModel(prompts[p]).size());
      for (int k = 0; k < 2; ++k) {
        const json& ch = r["choices"][p * 2 + static_cast<size_t>(k)];
        EXPECT_EQ(ch["index"], p * 2 + static_cast<size_t>(k));
        const json one = alone(prompts[p], seed ? std::optional<int>(*seed + k) : seed);
        EXPECT_EQ(ch["token_ids"], one["token_ids"]) << p << " " << k;
        EXPECT_EQ(ch["text"], one["text"]);
      }
    }
    EXPECT_EQ(r["usage"]["prompt_tokens"], prompt_tokens);
    EXPECT_EQ(r["usage"]["completion_tokens"], 4 * 6);
    // Streamed: each choice's chunks, by index, give the same text.
    json sb = b;
    sb["stream"] = true;
    auto s = c.Post("/v1/completions", sb.dump(), "application/json");
    ASSERT_TRUE(s);
    std::vector<std::string> texts(4);
    std::istringstream in(s->body);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("data: {", 0) != 0) continue;
      const json j = json::parse(line.substr(6));
      for (const auto& ch : j["choices"])
        texts[ch["index"].get<size_t>()] += ch["text"].get<std::string>();
    }
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(texts[i], r["choices"][i]["text"]) << i;
  }
  // Chat: n choices, each with the role in its first streamed chunk.
  auto rc = c.Post("/v1/chat/completions",
                   json{{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})},
                        {"max_tokens", 3},
                        {"n", 2},
                        {"stream", true}}
                       .dump(),
                   "application/json");
  ASSERT_TRUE(rc);
  std::set<int> roles;
  std::istringstream in(rc->body);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("data: {", 0) != 0) continue;
    const json j = json::parse(line.substr(6));
    for (const auto& ch : j["choices"])
      if (ch["delta"].contains("role")) roles.insert(ch["index"].get<int>());
  }
  EXPECT_EQ(roles, (std::set<int>{0, 1}));
}

// /tokenize and /detokenize (vLLM's shapes): the ids completions and chat completions use.
TEST_F(ServeCodelm, TokenizeAndDetokenizeMatchWhatGenerationUses) {
  auto c = server_->Client();
  int status = 0;
  auto& tok = *server_->loaded().tokenizer;
  json r = PostJson(c, "/tokenize", {{"prompt", kPrompt}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  const auto ids = tok.EncodeForModel(kPrompt);
  EXPECT_EQ(r["tokens"].get<std::vector<int32_t>>(), ids);
  EXPECT_EQ(r["count"], ids.size());
  EXPECT_EQ(r["max_model_len"], 256);
  r = PostJson(c, "/tokenize", {{"prompt", kPrompt}, {"add_special_tokens", false}}, &status);
  EXPECT_EQ(r["tokens"].get<std::vector<int32_t>>(), tok.Encode(kPrompt));
  r = PostJson(c, "/detokenize", {{"tokens", ids}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["prompt"], tok.Decode(ids));
  // Chat messages: the count is the chat completion's prompt_tokens.
  const json msgs = json::array({{{"role", "user"}, {"content", "Hi"}}});
  r = PostJson(c, "/tokenize", {{"messages", msgs}}, &status);
  ASSERT_EQ(status, 200) << r.dump();
  const json chat =
      PostJson(c, "/v1/chat/completions", {{"messages", msgs}, {"max_tokens", 1}}, &status);
  EXPECT_EQ(r["count"], chat["usage"]["prompt_tokens"]);
  // Bad input names its field.
  r = PostJson(c, "/detokenize", {{"tokens", {1, -5}}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(r["error"]["param"], "tokens");
  r = PostJson(c, "/tokenize", {{"prompt", 3}}, &status);
  EXPECT_EQ(status, 400);
  EXPECT_EQ(r["error"]["param"], "prompt");
}

TEST_F(ServeCodelm, ChatLogprobsListTheChosenAndTopTokens) {
  auto c = server_->Client();
  int status = 0;
  const json r = PostJson(c, "/v1/chat/completions",
                          {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})},
                           {"max_tokens", 5},
                           {"temperature", 0},
                           {"logprobs", true},
                           {"top_logprobs", 2},
                           {"ignore_eos", true}},
                          &status);
  ASSERT_EQ(status, 200) << r.dump();
  const json& content = r["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), r["usage"]["completion_tokens"].get<size_t>());
  for (const auto& t : content) {
    ASSERT_EQ(t["top_logprobs"].size(), 2u) << t.dump();
    EXPECT_EQ(t["logprob"], t["top_logprobs"][0]["logprob"]);  // greedy
    EXPECT_EQ(t["token"], t["top_logprobs"][0]["token"]);
    std::string from_bytes;
    for (const auto& b : t["bytes"]) from_bytes += static_cast<char>(b.get<int>());
    EXPECT_EQ(from_bytes, t["token"]);
  }
  // Without logprobs the field is null, as OpenAI sends it.
  const json plain = PostJson(
      c, "/v1/chat/completions",
      {{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})}, {"max_tokens", 2}},
      &status);
  ASSERT_EQ(status, 200);
  EXPECT_TRUE(plain["choices"][0]["logprobs"].is_null());
}

TEST_F(ServeCodelm, ChatCompletionUsesTheTemplateAndMatchesGreedy) {
  auto c = server_->Client();
  int status = 0;
  const json messages = json::array({{{"role", "user"}, {"content", "Write a sort function."}}});
  json r = PostJson(
      c, "/v1/chat/completions",
      {{"messages", messages}, {"max_tokens", 12}, {"temperature", 0}, {"return_token_ids", true}},
      &status);
  ASSERT_EQ(status, 200) << r.dump();
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["choices"][0]["message"]["role"], "assistant");
  const auto got = TokenIds(r);
  auto& tok = *server_->loaded().tokenizer;
  const auto prompt = tok.EncodeForModel("User: Write a sort function.\nAssistant:");
  auto model = LoadLlama(Codelm());
  const auto ref = GreedyGenerate(*model, prompt, 12, tok.eos_id());
  // A stop sequence (the template's "\nUser:") may end the reply early: a prefix then.
  ASSERT_LE(got.size(), ref.size());
  EXPECT_EQ(got, std::vector<int32_t>(ref.begin(), ref.begin() + got.size()));
}

// The SSE stream carries the same text as the plain response, chunk by chunk, and ends with
// [DONE]; chat chunks open with the assistant role.
TEST_F(ServeCodelm, StreamingSendsTheSameTextAsEvents) {
  auto c = server_->Client();
  const json body = {{"prompt", kPrompt}, {"max_tokens", 16}, {"temperature", 0}};
  int status = 0;
  const json plain = PostJson(c, "/v1/completions", body, &status);
  ASSERT_EQ(status, 200);
  json sb = body;
  sb["stream"] = true;
  sb["stream_options"] = {{"include_usage", true}};
  auto r = c.Post("/v1/completions", sb.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::string text, finish;
  int chunks = 0;
  bool done = false, usage = false;
  std::istringstream in(r->body);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    ASSERT_EQ(line.rfind("data: ", 0), 0u) << line;
    const std::string data = line.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const json j = json::parse(data);
    if (j.contains("usage")) {
      usage = j["usage"]["completion_tokens"] == plain["usage"]["completion_tokens"];
      continue;
    }
    ++chunks;
    text += j["choices"][0]["text"].get<std::string>();
    if (!j["choices"][0]["finish_reason"].is_null()) finish = j["choices"][0]["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_TRUE(usage);
  EXPECT_GT(chunks, 1);
  EXPECT_EQ(text, plain["choices"][0]["text"]);
  EXPECT_EQ(finish, plain["choices"][0]["finish_reason"]);

  auto rc = c.Post("/v1/chat/completions",
                   json{{"messages", json::array({{{"role", "user"}, {"content", "Hi"}}})},
                        {"max_tokens", 4},
                        {"stream", true}}
                       .dump(),
                   "application/json");
  ASSERT_TRUE(rc);
  const auto first = rc->body.substr(6, rc->body.find('\n') - 6);
  const json j = json::parse(first);
  EXPECT_EQ(j["object"], "chat.completion.chunk");
  EXPECT_EQ(j["choices"][0]["delta"]["role"], "assistant");
}

// 8 requests at once: each gets exactly its greedy answer alone, and decode steps were shared.
TEST_F(ServeCodelm, EightConcurrentRequestsAreBatched) {
  const std::vector<std::string> prompts = {
      "import os\n",     "class Stack:\n", "def add(a, b):\n", "for i in range(10):\n",
      "# sort a list\n", "def main():\n",  "while True:\n",    "x = [1, 2, 3]\n"};
  auto one = [&](const std::string& p, bool seeded) {
    auto c = server_->Client();
    int status = 0;
    json body = {
        {"prompt", p}, {"max_tokens", 20}, {"return_token_ids", true}, {"ignore_eos", true}};
    if (seeded) {
      body["temperature"] = 0.8;
      body["top_p"] = 0.9;
      body["seed"] = 1234;
    } else {
      body["temperature"] = 0;
    }
    json r = PostJson(c, "/v1/completions", body, &status);
    EXPECT_EQ(status, 200) << r.dump();
    return status == 200 ? TokenIds(r) : std::vector<int32_t>{};
  };
  for (bool seeded : {false, true}) {
    std::vector<std::vector<int32_t>> alone, together(prompts.size());
    for (const auto& p : prompts) alone.push_back(one(p, seeded));
    std::vector<std::thread> threads;
    for (size_t i = 0; i < prompts.size(); ++i)
      threads.emplace_back([&, i] { together[i] = one(prompts[i], seeded); });
    for (auto& t : threads) t.join();
    for (size_t i = 0; i < prompts.size(); ++i)
      EXPECT_EQ(together[i], alone[i]) << "prompt " << i << (seeded ? " (sampled)" : "");
  }
  // Some decode step ran with more than one request.
  auto c = server_->Client();
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  const std::string& t = m->body;
  const auto count_of = [&](const std::string& key) {
    const auto at = t.find(key);
    return at == std::string::npos ? -1.0 : std::stod(t.substr(at + key.size()));
  };
  const double steps = count_of("psserve_batch_size_count ");
  const double single = count_of("psserve_batch_size_bucket{le=\"1\"} ");
  EXPECT_GT(steps, single) << t;
  EXPECT_GT(count_of("psserve_batch_size_bucket{le=\"4\"} "), -1.0);
}

TEST_F(ServeCodelm, MalformedRequestsGet4xxWithAMessage) {
  auto c = server_->Client();
  struct Case {
    std::string path, body;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {"/v1/completions", "{oops", 400, ""},
      {"/v1/completions", R"({"max_tokens": 3})", 400, "prompt"},
      {"/v1/completions", R"({"prompt": "x", "temperature": 9})", 400, "temperature"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 100000})", 400, "max_tokens"},
      {"/v1/completions", R"({"prompt": "x", "n": 1000})", 400, "n"},
      {"/v1/completions", R"({"prompt": "x", "logprobs": 99})", 400, "logprobs"},
      {"/v1/completions", R"({"prompt": "x", "max_tokens": 0})", 400, "max_tokens"},
      {"/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})", 400,
       "top_logprobs"},
      {"/v1/chat/completions", R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
       "messages"},
      {"/v1/chat/completions", R"({"prompt": "x"})", 400, "messages"},
      {"/v1/nothing", "{}", 404, ""},
  };
  for (const auto& k : cases) {
    auto r = c.Post(k.path.c_str(), k.body, "application/json");
    ASSERT_TRUE(r) << k.path;
    EXPECT_EQ(r->status, k.status) << k.body << " -> " << r->body;
    const json e = json::parse(r->body, nullptr, false);
    ASSERT_TRUE(e.contains("error")) << r->body;
    EXPECT_FALSE(e["error"]["message"].get<std::string>().empty());
    if (!k.param.empty()) {
      EXPECT_EQ(e["error"]["param"], k.param) << r->body;
    }
  }
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models);
  EXPECT_EQ(json::parse(models->body)["data"][0]["id"], "codelm-19m");
}

TEST_F(ServeCodelm, MetricsAreExported) {
  auto c = server_->Client();
  int status = 0;
  PostJson(c, "/v1/completions", {{"prompt", "a"}, {"max_tokens", 3}}, &status);
  ASSERT_EQ(status, 200);
  auto m = c.Get("/metrics");
  ASSERT_TRUE(m);
  for (const char* name :
       {"psserve_requests_total{endpoint=\"completions\",status=\"200\"}",
        "psserve_prompt_tokens_total", "psserve_generation_tokens_total",
        "psserve_time_to_first_token_seconds_bucket", "psserve_inter_token_latency_seconds_count",
        "psserve_batch_size_bucket", "psserve_kv_cache_usage_ratio",
        "psserve_kv_cache_capacity_tokens 2048", "psserve_requests_running",
        "psserve_requests_waiting", "# TYPE psserve_time_to_first_token_seconds histogram"})
    EXPECT_NE(m->body.find(name), std::string::npos) << name << "\n" << m->body;
}

// With no room to queue, a request is refused with 429 and a message.
TEST(ServeQueue, FullQueueGets429AndMoreChoicesThanItHoldsGet400) {
  if (!fs::exists(Codelm() / "config.json")) GTEST_SKIP() << "no " << Codelm();
  Server s(CpuSpec(Codelm()), 1, /*max_waiting=*/0);
  auto c = s.Client();
  auto r = c.Post("/v1/completions", R"({"prompt": "x", "max_tokens": 2})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 429);
  EXPECT_NE(r->body.find("queue is full"), std::string::npos) << r->body;
  // More choices than the queue can ever hold: a 400 naming n, not a 429 to retry forever.
  Server one(CpuSpec(Codelm()), 1, /*max_waiting=*/2);
  auto c1 = one.Client();
  r = c1.Post("/v1/completions", R"({"prompt": "x", "max_tokens": 2, "n": 3})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400) << r->body;
  EXPECT_EQ(json::parse(r->body)["error"]["param"], "n");
  r = c1.Post("/v1/completions", R"({"prompt": "x", "max_tokens": 2, "n": 2})", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
}

// A checkpoint made by `W * mask` (torch leaves -0.0 where negative weights are masked) is
// published as compressed-tensors, loaded by the server from that artifact, and answers with
// the greedy tokens of the dense `W * mask` model.
TEST(ServeArtifacts, CompressedTensorsOfAWTimesMaskCheckpointServes) {
  if (!fs::exists(Codelm() / "config.json")) GTEST_SKIP() << "no " << Codelm();
  const ps::testing::TempDir tmp("serve_wmask");
  auto model = LoadLlama(Codelm(), LoadOptions{torch::kBFloat16, torch::kCPU});
  int64_t negative_zeros = 0;
  {
    torch::NoGradGuard ng;
    for (const auto& l : model->TargetLinears()) {
      const auto mask = sparse::PruneTwoFour(l->weight).ne(0);
      l->weight.copy_(l->weight * mask);  // W * mask, as a user's pruning script does
      negative_zeros +=
          torch::signbit(l->weight).logical_and(l->weight.eq(0)).sum().item<int64_t>();
    }
  }
  ASSERT_GT(negative_zeros, 1000);
  SaveOptions so;
  so.copy_files_from = Codelm();
  SaveLlama(*model, tmp / "wmask", so);
  pack::PackOptions po;
  po.model = tmp / "wmask";
  po.output = tmp / "ct";
  pack::PackModel(po);
  {
    Server s(CpuSpec(tmp / "ct"), 2);
    EXPECT_EQ(s.loaded().artifact, "compressed-tensors");
    auto c = s.Client();
    int status = 0;
    json r = PostJson(c, "/v1/completions",
                      {{"prompt", kPrompt},
                       {"max_tokens", 12},
                       {"temperature", 0},
                       {"return_token_ids", true},
                       {"ignore_eos", true}},
                      &status);
    ASSERT_EQ(status, 200) << r.dump();
    auto dense = LoadLlama(tmp / "wmask");
    const auto ref = GreedyGenerate(*dense, s.loaded().tokenizer->EncodeForModel(kPrompt), 12);
    EXPECT_EQ(TokenIds(r), ref);
  }
}

}  // namespace
}  // namespace ps::serve

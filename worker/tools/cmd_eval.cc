// pstool eval --model DIR [--ppl FILE ...] [--task FILE ...] [--ctx N] [--max-windows N]
//             [--batch N] [--device cpu|cuda] [--dtype fp32|bf16|fp16]   (--help lists all)
// pstool eval --server http://HOST:PORT --model DIR [--ppl FILE ...] [--task FILE ...]
//             (the model a running psserve serves; DIR gives the tokenizer)
// Prints one JSON object: {"model":..., "perplexity": {FILE: {...}}, "tasks": {NAME: {...}}}.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/eval/multiple_choice.h"
#include "worker/eval/perplexity.h"
#include "worker/models/llama_config.h"
#include "worker/tools/command.h"
#include "worker/tools/model_args.h"
#ifdef PS_WITH_SERVE_CLIENT
#include "worker/serve/score_client.h"
#endif

namespace ps {
namespace {

struct EvalArgs {
  ModelArgs m;
  std::vector<std::string> ppl_files, task_files;
  PerplexityOptions popt;
  std::optional<int64_t> ctx, max_items, max_windows;
  bool quiet = false;
  std::string convert_in, convert_out;
  std::string server;  // score with a running psserve instead of loading the model
};

// Perplexity windows and task requests scored by a running psserve, one request each.
struct ServerScorers {
  WindowsNll windows_nll;
  ContinuationScorer continuations;
};
ServerScorers MakeServerScorers(const std::string& server, int64_t max_length) {
#ifdef PS_WITH_SERVE_CLIENT
  auto client = std::make_shared<serve::ScoreClient>(server);
  ServerScorers s;
  s.windows_nll = [client](const torch::Tensor& windows) {
    double total = 0;
    for (int64_t w = 0; w < windows.size(0); ++w) {
      const auto row = windows[w].to(torch::kInt32).contiguous();
      total += client->SequenceNll(
          std::vector<int32_t>(row.data_ptr<int32_t>(), row.data_ptr<int32_t>() + row.numel()));
    }
    return total;
  };
  // The tokens the loaded model sees plus the last one, so the continuation's logprobs are the
  // prompt's last ones.
  s.continuations = [client, max_length](const std::vector<ContextContinuation>& requests) {
    std::vector<double> out;
    for (const auto& r : requests)
      out.push_back(client->SuffixLogprob(ScoredTokens(r, max_length), r.second.size()));
    return out;
  };
  return s;
#else
  (void)server, (void)max_length;
  throw Error("--server: this pstool was built without cpp-httplib (libcpp-httplib-dev)");
#endif
}

int RunEval(EvalArgs& a) {
  ModelArgs& m = a.m;
  const auto &ppl_files = a.ppl_files, &task_files = a.task_files;
  PerplexityOptions& popt = a.popt;
  if (a.max_windows) popt.max_windows = *a.max_windows;
  const auto &ctx = a.ctx, &max_items = a.max_items;
  const bool quiet = a.quiet;
  const std::string &convert_in = a.convert_in, &convert_out = a.convert_out;
  if (!convert_in.empty()) {
    if (convert_out.empty()) throw Error("--convert-task needs --output FILE");
    std::string lines;
    for (const auto& item : LoadTaskFile(convert_in)) lines += ToNativeJson(item).dump() + "\n";
    WriteFileAtomic(convert_out, lines);
    return 0;
  }
  if (ppl_files.empty() && task_files.empty()) throw Error("nothing to do: give --ppl or --task");
  // With --server nothing is loaded but the tokenizer and config.json (the default window).
  std::shared_ptr<LlamaForCausalLM> model;
  if (a.server.empty()) model = m.Load();
  auto tok = LoadTokenizer(m.model);
  popt.ctx = ctx.value_or(model ? model->config().max_position_embeddings
                                : LoadLlamaConfig(m.model).max_position_embeddings);
  popt.progress = !quiet;
  const ServerScorers server =
      a.server.empty() ? ServerScorers() : MakeServerScorers(a.server, popt.ctx);

  nlohmann::json out = {{"model", m.model}, {"device", m.device}, {"dtype", m.dtype}};
  if (!a.server.empty()) out = {{"model", m.model}, {"server", a.server}};
  for (const auto& f : ppl_files) {
    auto tokens = tok->EncodeForModel(ReadFile(f));
    auto r =
        model ? Perplexity(*model, tokens, popt) : Perplexity(tokens, popt, server.windows_nll);
    out["perplexity"][f] = {{"perplexity", r.perplexity},
                            {"mean_nll", r.mean_nll},
                            {"ctx", popt.ctx},
                            {"windows", r.windows},
                            {"windows_available", r.windows_available},
                            {"predicted_tokens", r.predicted_tokens},
                            {"text_tokens", r.text_tokens},
                            {"seconds", r.seconds}};
  }
  for (const auto& f : task_files) {
    auto items = LoadTaskFile(f);
    if (max_items && static_cast<int64_t>(items.size()) > *max_items) items.resize(*max_items);
    McOptions mopt;
    mopt.max_length = popt.ctx;
    mopt.progress = !quiet;
    auto r = model ? EvaluateMultipleChoice(*model, *tok, items, mopt)
                   : EvaluateMultipleChoice(*tok, items, mopt, server.continuations);
    out["tasks"][TaskName(f)] = {{"file", f},
                                 {"acc", r.acc},
                                 {"acc_norm", r.acc_norm},
                                 {"items", r.items},
                                 {"seconds", r.seconds}};
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

std::function<int()> Setup(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  a->m.Add(app);
  // --model is not needed to convert a task file.
  app.get_option("--model")->required(false);
  app.add_option("--ppl", a->ppl_files,
                 "perplexity of a text file (standard protocol; repeatable)");
  app.add_option("--task", a->task_files,
                 "zero-shot multiple-choice task, JSON lines (docs/eval.md; repeatable)");
  app.add_option("--ctx", a->ctx, "window length (default: the model's max_position_embeddings)")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-windows", a->max_windows, "score only the first N windows of each text")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-items", a->max_items, "score only the first N items of each task")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch", a->popt.batch, "windows per forward pass")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--quiet", a->quiet, "no progress on stderr");
  app.add_option("--server", a->server,
                 "http://HOST:PORT: score --ppl and --task with a running psserve instead of "
                 "loading the model (the model as served; --model DIR gives the tokenizer and "
                 "the default --ctx; the server's --max-model-len must hold --ctx tokens, and "
                 "--ctx + 1 for tasks' longest items)");
  app.add_option("--convert-task", a->convert_in,
                 "[FORMAT:]IN: rewrite a benchmark file (ARC, PIQA, ...) in the native task "
                 "format into --output");
  app.add_option("--output", a->convert_out, "with --convert-task: the file to write");
  return [a] {
    if (a->convert_in.empty() && a->m.model.empty())
      throw Error("--model DIR is required (or --convert-task IN --output OUT)");
    return RunEval(*a);
  };
}

const RegisterCommand kRegister("eval", {"perplexity and zero-shot tasks of a model", Setup});

}  // namespace
}  // namespace ps

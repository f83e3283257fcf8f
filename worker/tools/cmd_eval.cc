// pstool eval --model DIR [--ppl FILE ...] [--task FILE ...] [--ctx N] [--max-windows N]
//             [--batch N] [--device cpu|cuda] [--dtype fp32|bf16|fp16]
// Prints one JSON object: {"model":..., "perplexity": {FILE: {...}}, "tasks": {NAME: {...}}}.
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/eval/multiple_choice.h"
#include "worker/eval/perplexity.h"
#include "worker/tools/command.h"
#include "worker/tools/model_args.h"

namespace ps {
namespace {

int64_t IntFlag(const std::vector<std::string>& args, size_t& i) {
  std::string flag = args[i], v = FlagValue(args, i);
  try {
    size_t used = 0;
    int64_t n = std::stoll(v, &used);
    if (used != v.size() || n <= 0) throw std::invalid_argument("");
    return n;
  } catch (const std::exception&) {
    throw Error(flag + ": expected a positive integer, got '" + v + "'");
  }
}

int RunEval(const std::vector<std::string>& args) {
  ModelArgs m;
  std::vector<std::string> ppl_files, task_files;
  PerplexityOptions popt;
  std::optional<int64_t> ctx;
  std::optional<int64_t> max_items;
  bool quiet = false;
  std::string convert_in, convert_out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (m.Parse(args, i)) continue;
    const std::string& a = args[i];
    if (a == "--ppl") {
      ppl_files.push_back(FlagValue(args, i));
    } else if (a == "--task") {
      task_files.push_back(FlagValue(args, i));
    } else if (a == "--ctx") {
      ctx = IntFlag(args, i);
    } else if (a == "--max-windows") {
      popt.max_windows = IntFlag(args, i);
    } else if (a == "--max-items") {
      max_items = IntFlag(args, i);
    } else if (a == "--batch") {
      popt.batch = IntFlag(args, i);
    } else if (a == "--convert-task") {
      convert_in = FlagValue(args, i);
    } else if (a == "--output") {
      convert_out = FlagValue(args, i);
    } else if (a == "--quiet") {
      quiet = true;
    } else if (a == "--help") {
      std::cout
          << "pstool eval --model DIR [--ppl FILE ...] [--task FILE ...] [options]\n"
          << ModelArgs::Help()
          << "  --ppl FILE           perplexity of a text file (standard protocol)\n"
          << "  --task FILE          zero-shot multiple-choice task, JSON lines (docs/eval.md)\n"
          << "  --ctx N              window length (default: the model's max_position_embeddings)\n"
          << "  --max-windows N      score only the first N windows of each text\n"
          << "  --max-items N        score only the first N items of each task\n"
          << "  --batch N            windows per forward pass (default 8)\n"
          << "  --quiet              no progress on stderr\n"
          << "pstool eval --convert-task [FORMAT:]IN --output OUT\n"
          << "  rewrites a benchmark file (ARC, PIQA, ...) in the native task format\n";
      return 0;
    } else {
      throw Error("unknown argument '" + a + "' (see pstool eval --help)");
    }
  }
  if (!convert_in.empty()) {
    if (convert_out.empty()) throw Error("--convert-task needs --output FILE");
    std::string lines;
    for (const auto& item : LoadTaskFile(convert_in)) lines += ToNativeJson(item).dump() + "\n";
    WriteFileAtomic(convert_out, lines);
    return 0;
  }
  if (ppl_files.empty() && task_files.empty()) throw Error("nothing to do: give --ppl or --task");
  auto model = m.Load();
  auto tok = LoadTokenizer(m.model);
  popt.ctx = ctx.value_or(model->config().max_position_embeddings);
  popt.progress = !quiet;

  nlohmann::json out = {{"model", m.model}, {"device", m.device}, {"dtype", m.dtype}};
  for (const auto& f : ppl_files) {
    auto tokens = tok->EncodeForModel(ReadFile(f));
    auto r = Perplexity(*model, tokens, popt);
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
    auto r = EvaluateMultipleChoice(*model, *tok, items, mopt);
    out["tasks"][TaskName(f)] = {{"file", f},
                                 {"acc", r.acc},
                                 {"acc_norm", r.acc_norm},
                                 {"items", r.items},
                                 {"seconds", r.seconds}};
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

const RegisterCommand kRegister("eval", {"perplexity and zero-shot tasks of a model", RunEval});

}  // namespace
}  // namespace ps

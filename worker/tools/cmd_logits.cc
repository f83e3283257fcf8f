// pstool logits --model DIR --tokens 1,2,3 --output F.safetensors   (hidden: for cross-checks)
// Writes the fp32 logits [1, T, vocab] of one token sequence as tensor "logits"; --save-as also
// writes the model back out through SaveLlama (tests/gpu/hf_logits_check.py loads it in HF).
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/error.h"
#include "worker/io/tensor_io.h"
#include "worker/tools/command.h"
#include "worker/tools/model_args.h"

namespace ps {
namespace {

std::vector<int64_t> ParseTokens(const std::string& s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    std::string part = s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
    try {
      size_t used = 0;
      out.push_back(std::stoll(part, &used));
      if (used != part.size()) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw Error("--tokens: '" + part + "' is not an integer");
    }
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return out;
}

struct LogitsArgs {
  ModelArgs m;
  std::string tokens, output, save_as;
};

int RunLogits(const LogitsArgs& a) {
  const ModelArgs& m = a.m;
  const std::string &tokens = a.tokens, &output = a.output, &save_as = a.save_as;
  if (tokens.empty() || output.empty()) throw Error("--tokens and --output are required");
  auto ids = ParseTokens(tokens);
  auto model = m.Load();
  for (int64_t id : ids) {
    if (id < 0 || id >= model->config().vocab_size) {
      throw Error("--tokens: id " + std::to_string(id) + " is outside the vocabulary");
    }
  }
  torch::NoGradGuard no_grad;
  auto logits = model->forward(torch::tensor(ids, torch::kInt64).unsqueeze(0));
  SaveTensors(output, {{"logits", logits.to(torch::kCPU, torch::kFloat32)}});
  if (!save_as.empty()) {
    SaveOptions opts;
    opts.copy_files_from = m.model;
    SaveLlama(*model, save_as, opts);
  }
  return 0;
}

// Registered under a name `pstool help` lists; it is a developer tool for the HF cross-check.
std::function<int()> Setup(CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  a->m.Add(app);
  app.add_option("--tokens", a->tokens, "token ids, comma-separated: 1,2,3")->required();
  app.add_option("--output", a->output, "F.safetensors for the fp32 logits [1, T, vocab]")
      ->required();
  app.add_option("--save-as", a->save_as, "also re-save the model with our HF writer here");
  return [a] { return RunLogits(*a); };
}

const RegisterCommand kRegister("logits", {"(dev) dump the logits of a token sequence", Setup});

}  // namespace
}  // namespace ps

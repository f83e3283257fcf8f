// pstool logits --model DIR --tokens 1,2,3 --output F.safetensors   (hidden: for cross-checks)
// Writes the fp32 logits [1, T, vocab] of one token sequence as tensor "logits"; --save-as also
// writes the model back out through SaveLlama (tests/gpu/hf_logits_check.py loads it in HF).
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

int RunLogits(const std::vector<std::string>& args) {
  ModelArgs m;
  std::string tokens, output, save_as;
  for (size_t i = 0; i < args.size(); ++i) {
    if (m.Parse(args, i)) continue;
    if (args[i] == "--tokens") {
      tokens = FlagValue(args, i);
    } else if (args[i] == "--output") {
      output = FlagValue(args, i);
    } else if (args[i] == "--save-as") {
      save_as = FlagValue(args, i);
    } else if (args[i] == "--help") {
      std::cout << "pstool logits --model DIR --tokens 1,2,3 --output F.safetensors\n"
                   "  [--save-as DIR]   also re-save the model with our HF writer\n"
                << ModelArgs::Help();
      return 0;
    } else {
      throw Error("unknown argument '" + args[i] + "' (see pstool logits --help)");
    }
  }
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
const RegisterCommand kRegister("logits", {"(dev) dump the logits of a token sequence", RunLogits});

}  // namespace
}  // namespace ps

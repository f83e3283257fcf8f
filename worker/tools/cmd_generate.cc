// pstool generate --model DIR --prompt STR --max-new N: greedy completion (KV-cached).
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/error.h"
#include "worker/eval/generate.h"
#include "worker/tools/command.h"
#include "worker/tools/model_args.h"

namespace ps {
namespace {

struct GenerateArgs {
  ModelArgs m;
  std::string prompt;
  int64_t max_new = 64;
};

int RunGenerate(const GenerateArgs& a) {
  const ModelArgs& m = a.m;
  const std::string& prompt = a.prompt;
  const int64_t max_new = a.max_new;
  auto model = m.Load();
  auto tok = LoadTokenizer(m.model);
  auto ids = tok->EncodeForModel(prompt);
  auto out = GreedyGenerate(*model, ids, max_new, tok->eos_id());
  // Decoding prompt + continuation together keeps SentencePiece's word-boundary spaces right.
  std::vector<int32_t> all = ids;
  all.insert(all.end(), out.begin(), out.end());
  std::cout << tok->Decode(all) << std::endl;
  return 0;
}

std::function<int()> Setup(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  a->m.Add(app);
  app.add_option("--prompt", a->prompt, "text to complete")->required();
  app.add_option("--max-new", a->max_new, "tokens to generate")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  return [a] { return RunGenerate(*a); };
}

const RegisterCommand kRegister("generate", {"greedy text completion with a model", Setup});

}  // namespace
}  // namespace ps

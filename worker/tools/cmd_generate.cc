// pstool generate --model DIR --prompt STR --max-new N: greedy completion (KV-cached).
#include <iostream>

#include "common/error.h"
#include "worker/eval/generate.h"
#include "worker/tools/command.h"
#include "worker/tools/model_args.h"

namespace ps {
namespace {

int RunGenerate(const std::vector<std::string>& args) {
  ModelArgs m;
  std::string prompt;
  int64_t max_new = 64;
  for (size_t i = 0; i < args.size(); ++i) {
    if (m.Parse(args, i)) continue;
    if (args[i] == "--prompt") {
      prompt = FlagValue(args, i);
    } else if (args[i] == "--max-new") {
      std::string v = FlagValue(args, i);
      try {
        max_new = std::stoll(v);
      } catch (const std::exception&) {
        throw Error("--max-new: not a number: '" + v + "'");
      }
    } else if (args[i] == "--help") {
      std::cout << "pstool generate --model DIR --prompt STR [--max-new N]   greedy completion\n"
                << ModelArgs::Help();
      return 0;
    } else {
      throw Error("unknown argument '" + args[i] + "' (see pstool generate --help)");
    }
  }
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

const RegisterCommand kRegister("generate", {"greedy text completion with a model", RunGenerate});

}  // namespace
}  // namespace ps

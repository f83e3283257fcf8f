// pstool inspect --model DIR: lists a checkpoint's tensors (name, dtype, shape) as JSON lines.
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/safetensors.h"
#include "worker/tools/command.h"

namespace ps {
namespace {

int RunInspect(const std::vector<std::string>& args) {
  std::string model;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--model" && i + 1 < args.size()) {
      model = args[++i];
    } else if (args[i] == "--help") {
      std::cout << "pstool inspect --model DIR   list the checkpoint's tensors\n";
      return 0;
    } else {
      throw Error("unknown argument '" + args[i] + "' (see pstool inspect --help)");
    }
  }
  if (model.empty()) throw Error("--model DIR is required");
  auto ckpt = Checkpoint::Open(model);
  uint64_t total = 0;
  for (const auto& name : ckpt.Names()) {
    const auto& info = ckpt.Info(name);
    total += info.Numel();
    std::cout << nlohmann::json{{"name", name},
                                {"dtype", std::string(DTypeName(info.dtype))},
                                {"shape", info.shape}}
                     .dump()
              << "\n";
  }
  std::cout << nlohmann::json{{"tensors", ckpt.Names().size()}, {"parameters", total}}.dump()
            << "\n";
  return 0;
}

const RegisterCommand kRegister("inspect", {"list a checkpoint's tensors", RunInspect});

}  // namespace
}  // namespace ps

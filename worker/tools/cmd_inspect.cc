// pstool inspect --model DIR: lists a checkpoint's tensors (name, dtype, shape) as JSON lines.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/safetensors.h"
#include "worker/tools/command.h"

namespace ps {
namespace {

int RunInspect(const std::string& model) {
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

std::function<int()> Setup(CLI::App& app) {
  auto model = std::make_shared<std::string>();
  app.add_option("--model", *model, "Hugging Face model directory or safetensors checkpoint")
      ->required();
  return [model] { return RunInspect(*model); };
}

const RegisterCommand kRegister("inspect", {"list a checkpoint's tensors", Setup});

}  // namespace
}  // namespace ps

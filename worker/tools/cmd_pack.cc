// pstool pack / pstool unpack: 2:4 artifacts of a pruned checkpoint (docs/artifacts.md). Each
// prints one JSON line with the sizes (pack) or what was restored (unpack).
#include <CLI/CLI.hpp>
#include <iostream>

#include "common/error.h"
#include "worker/pack/pack_model.h"
#include "worker/tools/command.h"

namespace ps {
namespace {

int RunPack(std::map<std::string, std::string>& f) {
  if (f["--format"].empty())
    throw Error("--format is required (compressed-tensors, native, masks)");
  if (f["--pattern"] != "2:4")
    throw Error("--pattern " + f["--pattern"] + ": only 2:4 is supported");
  pack::PackOptions opt;
  opt.model = f["--model"];
  opt.output = f["--output"];
  opt.base_model = f["--base-model"];
  opt.format = pack::ParseFormat(f["--format"]);
  opt.mask_encoding = pack::ParseMaskEncoding(f["--mask-encoding"]);
  if (opt.format != pack::Format::kMasks && f["--mask-encoding"] != "base6")
    throw Error("--mask-encoding is only for --format masks");
  std::cout << pack::PackModel(opt).ToJson().dump() << "\n";
  return 0;
}

int RunUnpack(std::map<std::string, std::string>& f) {
  pack::UnpackOptions opt{f["--input"], f["--output"], f["--base-model"]};
  std::cout << pack::UnpackModel(opt).ToJson().dump() << "\n";
  return 0;
}

std::function<int()> SetupPack(CLI::App& app) {
  auto f = std::make_shared<std::map<std::string, std::string>>(
      std::map<std::string, std::string>{{"--pattern", "2:4"}, {"--mask-encoding", "base6"}});
  auto& m = *f;
  app.add_option("--model", m["--model"],
                 "a 2:4-pruned checkpoint (q/k/v/o/gate/up/down weights 2:4 sparse)")
      ->required();
  app.add_option("--format", m["--format"],
                 "compressed-tensors: loadable by vLLM / transformers (sparse-24-bitmask); "
                 "native: kept values [out, in/2] + 2-bit positions; masks: the masks alone, "
                 "for the base model given by --base-model")
      ->required();
  app.add_option("--output", m["--output"], "new directory (must not exist or be empty)")
      ->required();
  app.add_option("--pattern", m["--pattern"], "only 2:4")->capture_default_str();
  app.add_option("--base-model", m["--base-model"],
                 "the dense model: required for masks; otherwise the size reference");
  app.add_option("--mask-encoding", m["--mask-encoding"],
                 "masks only: base6 (0.667 bit/param) or bits (1 bit/param)")
      ->capture_default_str();
  return [f] { return RunPack(*f); };
}

std::function<int()> SetupUnpack(CLI::App& app) {
  auto f = std::make_shared<std::map<std::string, std::string>>();
  auto& m = *f;
  app.add_option("--input", m["--input"],
                 "an artifact written by pstool pack (or any compressed-tensors sparse-24-bitmask "
                 "checkpoint); the kind is detected")
      ->required();
  app.add_option("--output", m["--output"], "new directory for the dense checkpoint")->required();
  app.add_option("--base-model", m["--base-model"],
                 "masks artifacts: the base model they were made for");
  return [f] { return RunUnpack(*f); };
}

const RegisterCommand kPack("pack", {"write a 2:4 artifact (compressed-tensors, native, masks)",
                                     SetupPack});
const RegisterCommand kUnpack("unpack",
                              {"restore the dense checkpoint from a 2:4 artifact", SetupUnpack});

}  // namespace
}  // namespace ps

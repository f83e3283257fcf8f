// pstool pack / pstool unpack: 2:4 artifacts of a pruned checkpoint (docs/artifacts.md). Each
// prints one JSON line with the sizes (pack) or what was restored (unpack).
#include <iostream>

#include "common/error.h"
#include "worker/pack/pack_model.h"
#include "worker/tools/command.h"

namespace ps {
namespace {

constexpr char kPackHelp[] =
    "pstool pack --model DIR --format compressed-tensors|native|masks --output DIR\n"
    "            [--pattern 2:4] [--base-model DIR] [--mask-encoding base6|bits]\n"
    "  --model DIR          a 2:4-pruned checkpoint (q/k/v/o/gate/up/down weights 2:4 sparse)\n"
    "  --format F           compressed-tensors: loadable by vLLM / transformers "
    "(sparse-24-bitmask)\n"
    "                       native: kept values [out, in/2] + 2-bit positions\n"
    "                       masks: the masks alone, for the base model given by --base-model\n"
    "  --base-model DIR     the dense model: required for masks; otherwise the size reference\n"
    "  --mask-encoding E    masks only: base6 (0.667 bit/param, default) or bits (1 bit/param)\n"
    "  --output DIR         new directory (must not exist or be empty)\n";

constexpr char kUnpackHelp[] =
    "pstool unpack --input DIR --output DIR [--base-model DIR]\n"
    "  --input DIR          an artifact written by pstool pack (or any compressed-tensors\n"
    "                       sparse-24-bitmask checkpoint); the kind is detected\n"
    "  --base-model DIR     masks artifacts: the base model they were made for\n"
    "  --output DIR         new directory for the dense checkpoint\n";

// Reads "--flag value" pairs into `into`; unknown flags are errors.
bool ParseFlags(const std::vector<std::string>& args, std::map<std::string, std::string>& into,
                const char* help) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--help") {
      std::cout << help;
      return false;
    }
    auto it = into.find(args[i]);
    if (it == into.end()) throw Error("unknown argument '" + args[i] + "' (see --help)");
    if (i + 1 >= args.size()) throw Error(args[i] + " needs a value");
    it->second = args[++i];
  }
  return true;
}

int RunPack(const std::vector<std::string>& args) {
  std::map<std::string, std::string> f{{"--model", ""},      {"--format", ""},
                                       {"--output", ""},     {"--pattern", "2:4"},
                                       {"--base-model", ""}, {"--mask-encoding", "base6"}};
  if (!ParseFlags(args, f, kPackHelp)) return 0;
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

int RunUnpack(const std::vector<std::string>& args) {
  std::map<std::string, std::string> f{{"--input", ""}, {"--output", ""}, {"--base-model", ""}};
  if (!ParseFlags(args, f, kUnpackHelp)) return 0;
  pack::UnpackOptions opt{f["--input"], f["--output"], f["--base-model"]};
  std::cout << pack::UnpackModel(opt).ToJson().dump() << "\n";
  return 0;
}

const RegisterCommand kPack("pack",
                            {"write a 2:4 artifact (compressed-tensors, native, masks)", RunPack});
const RegisterCommand kUnpack("unpack",
                              {"restore the dense checkpoint from a 2:4 artifact", RunUnpack});

}  // namespace
}  // namespace ps

// pstool prox: applies the EnumALM prox to the weights of a safetensors file or a Hugging Face
// checkpoint directory and prints one JSON line with the sparsity fractions and the objective.
//   pstool prox --input A.safetensors|DIR --output B.safetensors|DIR --lambda L
//               [--pattern 2:4|1:4] [--device cpu|cuda] [--targets all|linear]
#include <torch/types.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/nm_pattern.h"
#include "common/safetensors.h"
#include "worker/io/tensor_io.h"
#include "worker/prox/prox.h"
#include "worker/tools/command.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHelp =
    "pstool prox --input A.safetensors|DIR --output B.safetensors|DIR --lambda L\n"
    "            [--pattern 2:4|1:4] [--device cpu|cuda] [--targets all|linear]\n"
    "  Applies prox_{L Reg_N:M} in place of every matching 2-D floating tensor (groups of M\n"
    "  along the last dimension); other tensors pass through unchanged. linear (default) = the\n"
    "  q/k/v/o/gate/up/down projection weights by Hugging Face name; all = every 2-D float\n"
    "  tensor whose last dimension divides by M. A directory input is a Hugging Face checkpoint\n"
    "  (sharded or not); the output directory gets one model.safetensors plus the config and\n"
    "  tokenizer files. Prints one JSON line.\n";

struct Options {
  fs::path input, output;
  float lambda = -1;
  bool lambda_set = false;
  NMPattern pattern = k2of4;
  std::string device = "cpu";
  std::string targets = "linear";
};

Options Parse(const std::vector<std::string>& args, bool& help) {
  Options o;
  auto value = [&](size_t& i) -> const std::string& {
    if (i + 1 >= args.size()) throw Error(args[i] + " needs a value");
    return args[++i];
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--help") {
      help = true;
    } else if (a == "--input") {
      o.input = value(i);
    } else if (a == "--output") {
      o.output = value(i);
    } else if (a == "--lambda") {
      const std::string& v = value(i);
      size_t used = 0;
      try {
        o.lambda = std::stof(v, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != v.size() || v.empty()) throw Error("--lambda: not a number: '" + v + "'");
      o.lambda_set = true;
    } else if (a == "--pattern") {
      o.pattern = ParseNMPattern(value(i), "--pattern");
    } else if (a == "--device") {
      o.device = value(i);
      if (o.device != "cpu" && o.device != "cuda")
        throw Error("--device must be cpu or cuda, not '" + o.device + "'");
    } else if (a == "--targets") {
      o.targets = value(i);
      if (o.targets != "all" && o.targets != "linear")
        throw Error("--targets must be all or linear, not '" + o.targets + "'");
    } else {
      throw Error("unknown argument '" + a + "' (see pstool prox --help)");
    }
  }
  if (help) return o;
  if (o.input.empty()) throw Error("--input is required");
  if (o.output.empty()) throw Error("--output is required");
  if (!o.lambda_set) throw Error("--lambda is required");
  if (!(o.lambda >= 0) || !std::isfinite(o.lambda)) throw Error("--lambda must be finite and >= 0");
  return o;
}

bool IsLinearName(const std::string& name) {
  static const std::regex re(R"((^|\.)(q|k|v|o|gate|up|down)_proj\.weight$)");
  return std::regex_search(name, re);
}

int RunProx(const std::vector<std::string>& args) {
  bool help = false;
  const Options o = Parse(args, help);
  if (help) {
    std::cout << kHelp;
    return 0;
  }
  if (o.device == "cuda" && !prox::CudaCompiled())
    throw Error("--device cuda: this pstool was built without CUDA");
  const auto start = std::chrono::steady_clock::now();

  // Sources: one file, or a checkpoint directory.
  const bool dir_in = fs::is_directory(o.input);
  std::vector<std::shared_ptr<const SafetensorsFile>> files;
  std::vector<std::pair<const SafetensorsFile*, const TensorInfo*>> tensors;
  std::map<std::string, std::string> metadata;
  if (dir_in) {
    const Checkpoint ckpt = Checkpoint::Open(o.input);
    files = ckpt.files();
    for (const auto& name : ckpt.Names())
      tensors.emplace_back(&ckpt.FileOf(name), &ckpt.Info(name));
  } else {
    if (!fs::exists(o.input)) throw Error("--input " + o.input.string() + ": no such file");
    files.push_back(SafetensorsFile::Open(o.input));
    for (const auto& info : files[0]->tensors()) tensors.emplace_back(files[0].get(), &info);
  }
  if (!files.empty()) metadata = files[0]->metadata();
  const bool dir_out =
      dir_in || fs::is_directory(o.output) || o.output.extension() != ".safetensors";
  const fs::path out_file = dir_out ? o.output / "model.safetensors" : o.output;

  const torch::Device device(o.device == "cuda" ? torch::kCUDA : torch::kCPU);
  torch::Tensor stats = prox::NewStatsBuffer(device);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  std::vector<std::string> skipped;
  int processed = 0;
  for (const auto& [file, info] : tensors) {
    torch::Tensor t = TensorView(*file, *info);
    const bool floating =
        info->dtype == DType::kF32 || info->dtype == DType::kF16 || info->dtype == DType::kBF16;
    const bool named = o.targets == "all" || IsLinearName(info->name);
    if (floating && info->shape.size() == 2 && named) {
      if (info->shape[1] % o.pattern.m != 0) {
        if (o.targets == "linear")
          throw Error(file->path().string() + ": tensor " + info->name + " has last dimension " +
                      std::to_string(info->shape[1]) + ", not divisible by " +
                      std::to_string(o.pattern.m));
        skipped.push_back(info->name);
      } else {
        torch::Tensor w = t.to(device, /*non_blocking=*/false, /*copy=*/true).contiguous();
        prox::ProxInPlaceAccumulate(w, o.lambda, o.pattern, stats);
        t = w.to(torch::kCPU);
        ++processed;
      }
    }
    out.emplace_back(info->name, t);
  }
  const prox::ProxStats s = prox::ReadStats(stats);
  if (s.groups_nonfinite > 0)
    throw Error(std::to_string(s.groups_nonfinite) + " groups of " + o.input.string() +
                " contain NaN or Inf; nothing was written");
  if (processed == 0)
    throw Error("no tensor of " + o.input.string() + " matches --targets " + o.targets);

  if (dir_out) fs::create_directories(o.output);
  SaveTensors(out_file, out, metadata);
  if (dir_in) {
    for (const auto& e : fs::directory_iterator(o.input)) {
      const auto name = e.path().filename().string();
      if (!e.is_regular_file() || e.path().extension() == ".safetensors" ||
          name == "model.safetensors.index.json")
        continue;
      fs::copy_file(e.path(), o.output / name, fs::copy_options::overwrite_existing);
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double g = s.groups > 0 ? static_cast<double>(s.groups) : 1.0;
  const std::string p = o.pattern.ToString();
  nlohmann::json j = {{"command", "prox"},
                      {"input", o.input.string()},
                      {"output", out_file.string()},
                      {"pattern", p},
                      {"lambda", o.lambda},
                      {"device", o.device},
                      {"targets", o.targets},
                      {"tensors_processed", processed},
                      {"tensors_total", out.size()},
                      {"groups", s.groups},
                      {"fractions",
                       {{p + "_sparse", s.groups_nsparse / g},
                        {"partly_sparse", s.groups_mid / g},
                        {"dense", s.groups_dense / g}}},
                      {"objective", s.objective},
                      {"unconverged_groups", s.groups_unconverged},
                      {"mean_alm_sweeps", s.alm_sweeps / g},
                      {"seconds", seconds}};
  if (!skipped.empty()) j["skipped_not_divisible"] = skipped;
  std::cout << j.dump() << "\n";
  return 0;
}

const RegisterCommand kRegister("prox",
                                {"apply the EnumALM N:M prox to a checkpoint's weights", RunProx});

}  // namespace
}  // namespace ps

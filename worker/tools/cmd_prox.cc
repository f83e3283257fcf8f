// pstool prox: applies the EnumALM prox to the weights of a safetensors file or a Hugging Face
// checkpoint directory and prints one JSON line with the sparsity fractions and the objective.
//   pstool prox --input A.safetensors|DIR --output B.safetensors|DIR --lambda L
//               [--pattern 2:4|1:4] [--device cpu|cuda] [--targets all|linear]
#include <torch/types.h>

#include <CLI/CLI.hpp>
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
    "Applies prox_{L Reg_N:M} in place of every matching 2-D floating tensor (groups of M\n"
    "  along the last dimension); other tensors pass through unchanged. linear (default) = the\n"
    "  q/k/v/o/gate/up/down projection weights by Hugging Face name; all = every 2-D float\n"
    "  tensor whose last dimension divides by M. A directory input is a Hugging Face checkpoint\n"
    "  (sharded or not); the output directory gets one model.safetensors plus the config and\n"
    "  tokenizer files. Prints one JSON line.\n";

struct Options {
  fs::path input, output;
  float lambda = -1;
  NMPattern pattern = k2of4;
  std::string device = "cpu";
  std::string targets = "linear";
};

// Checks what CLI11 cannot: a finite, non-negative lambda.
void Validate(const Options& o) {
  if (!(o.lambda >= 0) || !std::isfinite(o.lambda)) throw Error("--lambda must be finite and >= 0");
}

bool IsLinearName(const std::string& name) {
  static const std::regex re(R"((^|\.)(q|k|v|o|gate|up|down)_proj\.weight$)");
  return std::regex_search(name, re);
}

int RunProx(const Options& o) {
  Validate(o);
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

std::function<int()> Setup(CLI::App& app) {
  auto o = std::make_shared<Options>();
  app.footer(kHelp);
  app.add_option("--input", o->input, "A.safetensors or a Hugging Face model directory")
      ->required();
  app.add_option("--output", o->output, "B.safetensors or a new directory")->required();
  app.add_option("--lambda", o->lambda, "prox strength L (finite, >= 0)")->required();
  app.add_option_function<std::string>(
      "--pattern", [o](const std::string& v) { o->pattern = ParseNMPattern(v, "--pattern"); },
      "N:M pattern (default 2:4)");
  app.add_option("--device", o->device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--targets", o->targets, "linear (q/k/v/o/gate/up/down weights) or all")
      ->check(CLI::IsMember({"all", "linear"}))
      ->capture_default_str();
  return [o] { return RunProx(*o); };
}

const RegisterCommand kRegister("prox",
                                {"apply the EnumALM N:M prox to a checkpoint's weights", Setup});

}  // namespace
}  // namespace ps

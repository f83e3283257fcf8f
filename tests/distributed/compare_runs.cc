// compare_runs RUN_A RUN_B [--weights-tol T] [--max-differ K] [--published-tol P]: how far apart
// two psworker runs of the same job are.
//   masks:   every target's mask (RUN/masks.safetensors, packed bits), compared group by group
//            (groups of M along the input dimension); prints how many groups differ.
//   weights: when both runs kept checkpoints (--keep-checkpoints) of the same step, the largest
//            |difference| of every trained tensor's master weights there.
//   published: with --published-tol, the largest |difference| of every masked tensor of the two
//            published models (RUN/model/*.safetensors); exit 1 above P.
// Exit 0 when at most K groups differ (default 0) and the weights agree within T (default 1e-4);
// 1 otherwise. Runs on different rank counts sum gradients in a different order, so their weights
// differ in the last bits (~1e-8 typical, ~1e-5 at most here) and a group whose N-th and
// (N+1)-th largest weights are that close can keep either: on the default model about one such
// group in a few million. K bounds those; a real divergence flips many more.
// Used by the rank-equivalence and resume tests (psworker_acceptance.sh).
#include <torch/types.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/error.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "worker/io/tensor_io.h"

namespace fs = std::filesystem;

namespace {

// Little-endian bit order: element k is bit k % 8 of byte k / 8 (masks.safetensors' format).
torch::Tensor Unpack(const torch::Tensor& packed, const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  if (packed.numel() != (n + 7) / 8) throw ps::Error("mask bytes do not match its shape");
  auto bytes = packed.to(torch::kInt64).repeat_interleave(8);
  auto bit = torch::arange(8, torch::kInt64).repeat({packed.numel()});
  return bytes.bitwise_right_shift(bit)
      .bitwise_and(1)
      .narrow(0, 0, n)
      .to(torch::kBool)
      .reshape(shape);
}

struct Masks {
  int m = 4;
  std::map<std::string, torch::Tensor> masks;
};

Masks LoadMasks(const fs::path& run) {
  auto f = ps::SafetensorsFile::Open(run / "masks.safetensors");
  Masks out;
  const auto& meta = f->metadata();
  auto shapes = nlohmann::json::parse(meta.at("shapes"));
  const std::string pattern = meta.at("pattern");
  out.m = std::stoi(pattern.substr(pattern.find(':') + 1));
  for (const auto& t : f->tensors())
    out.masks[t.name] =
        Unpack(ps::TensorView(*f, t), shapes.at(t.name).get<std::vector<int64_t>>());
  return out;
}

// The newest complete checkpoint's step directory, if any.
std::optional<fs::path> NewestCheckpoint(const fs::path& run) {
  std::optional<fs::path> best;
  if (!fs::exists(run / "checkpoints")) return best;
  for (const auto& e : fs::directory_iterator(run / "checkpoints"))
    if (fs::exists(e.path() / "manifest.json") && (!best || e.path().filename() > best->filename()))
      best = e.path();
  return best;
}

// Every tensor named in `names` from a published model directory (one or several shards).
std::map<std::string, torch::Tensor> LoadPublished(
    const fs::path& dir, const std::map<std::string, torch::Tensor>& names) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    auto f = ps::SafetensorsFile::Open(e.path());
    for (const auto& t : f->tensors())
      if (names.count(t.name)) out[t.name] = ps::TensorView(*f, t).to(torch::kFloat64);
  }
  return out;
}

std::map<std::string, torch::Tensor> LoadMasters(const fs::path& dir) {
  auto manifest = nlohmann::json::parse(ps::ReadFile(dir / "manifest.json"));
  std::map<std::string, torch::Tensor> out;
  for (int r = 0; r < manifest.at("ranks").get<int>(); ++r) {
    auto f = ps::SafetensorsFile::Open(dir / ("rank-" + std::to_string(r) + ".safetensors"));
    for (const auto& t : f->tensors()) {
      const std::string suffix = ".master";
      if (t.name.size() > suffix.size() && t.name.ends_with(suffix))
        out[t.name] = ps::TensorView(*f, t).to(torch::kFloat64);
    }
  }
  return out;
}

int Run(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: compare_runs RUN_A RUN_B [--weights-tol T] [--max-differ K]\n";
    return 2;
  }
  const fs::path a = argv[1], b = argv[2];
  double tol = 1e-4, published_tol = -1;
  int64_t max_differ = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--weights-tol") {
      tol = std::atof(argv[i + 1]);
    } else if (flag == "--max-differ") {
      max_differ = std::atoll(argv[i + 1]);
    } else if (flag == "--published-tol") {
      published_tol = std::atof(argv[i + 1]);
    } else {
      throw ps::Error("unknown option " + flag +
                      " (--weights-tol T, --max-differ K, --published-tol P)");
    }
  }
  bool ok = true;

  Masks ma = LoadMasks(a), mb = LoadMasks(b);
  if (ma.masks.size() != mb.masks.size()) throw ps::Error("the runs have different mask tensors");
  int64_t groups = 0, differ = 0;
  for (const auto& [name, x] : ma.masks) {
    auto it = mb.masks.find(name);
    if (it == mb.masks.end()) throw ps::Error(b.string() + " has no mask for " + name);
    if (it->second.sizes() != x.sizes()) throw ps::Error("mask shapes differ for " + name);
    auto diff = x.ne(it->second).reshape({-1, ma.m}).any(1);
    const int64_t d = diff.sum().item<int64_t>();
    groups += diff.numel();
    differ += d;
    if (d > 0) std::cout << "  " << name << ": " << d << " groups differ\n";
  }
  std::cout << "masks: " << groups << " groups in " << ma.masks.size() << " tensors, " << differ
            << " differ (at most " << max_differ << " allowed)\n";
  ok = ok && differ <= max_differ;

  if (published_tol >= 0) {
    auto pa = LoadPublished(a / "model", ma.masks), pb = LoadPublished(b / "model", ma.masks);
    double worst = 0;
    std::string where;
    for (const auto& [name, x] : pa) {
      auto it = pb.find(name);
      if (it == pb.end()) throw ps::Error(b.string() + "/model has no " + name);
      double d = (x - it->second).abs().max().item<double>();
      if (d > worst) {
        worst = d;
        where = name;
      }
    }
    std::cout << "published: " << pa.size() << " masked tensors, max |difference| " << worst
              << (where.empty() ? "" : " (" + where + ")") << ", tolerance " << published_tol
              << "\n";
    ok = ok && pa.size() == ma.masks.size() && pb.size() == pa.size() && worst <= published_tol;
  }

  auto ca = NewestCheckpoint(a), cb = NewestCheckpoint(b);
  if (ca && cb && ca->filename() == cb->filename()) {
    auto wa = LoadMasters(*ca), wb = LoadMasters(*cb);
    double worst = 0;
    std::string where;
    for (const auto& [name, x] : wa) {
      auto it = wb.find(name);
      if (it == wb.end()) throw ps::Error(cb->string() + " has no " + name);
      double d = (x - it->second).abs().max().item<double>();
      if (d > worst) {
        worst = d;
        where = name;
      }
    }
    std::cout << "weights at " << ca->filename().string() << ": " << wa.size()
              << " tensors, max |difference| " << worst << (where.empty() ? "" : " (" + where + ")")
              << ", tolerance " << tol << "\n";
    ok = ok && wa.size() == wb.size() && worst <= tol;
  } else {
    std::cout << "weights: no common checkpoint to compare\n";
  }
  std::cout << (ok ? "SAME" : "DIFFERENT") << "\n";
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "compare_runs: error: " << e.what() << "\n";
    return 2;
  }
}

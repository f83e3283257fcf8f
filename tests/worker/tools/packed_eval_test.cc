// `pstool eval` on the packed forms a job publishes: codelm-19m pruned 2:4 (magnitude), packed by
// `pstool pack` as compressed-tensors and native, evaluated directly from those directories; the
// perplexity must equal the dense-layout directory's exactly (the unpacking is bit-exact).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "tests/worker/pack/pack_test_util.h"

namespace ps::pack::testing {
namespace {

// Runs a shell command; returns (exit code, stdout).
std::pair<int, std::string> Shell(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {-1, out};
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

TEST(PackedEval, CompressedTensorsAndNativeGiveTheDensePerplexity) {
  const fs::path data = fs::path(PS_SHARED_DATA);
  if (!fs::exists(data / "codelm-19m" / "config.json") || !fs::exists(data / "code-eval.txt"))
    GTEST_SKIP() << "no codelm-19m / code-eval.txt in " << data;
  TempDir tmp("packed_eval");
  const auto base = Checkpoint::Open(data / "codelm-19m");
  TensorMap pruned;
  for (const auto& name : base.Names()) {
    const auto& info = base.Info(name);
    auto d = base.Data(name);
    Tensor t{info.dtype, info.shape, {d.begin(), d.end()}};
    if (IsPruneTarget(name)) PruneTop2(t.bytes, DTypeSize(info.dtype));
    pruned[name] = std::move(t);
  }
  WriteModel(tmp / "dense", pruned, 1);
  for (const char* side : {"config.json", "tokenizer.model", "tokenizer_config.json"})
    fs::copy_file(data / "codelm-19m" / side, tmp / "dense" / side,
                  fs::copy_options::overwrite_existing);
  const std::string pstool = std::string(PS_BINARY_DIR) + "/worker/tools/pstool";
  for (const char* format : {"compressed-tensors", "native"}) {
    auto [rc, out] = Shell(pstool + " pack --model " + (tmp / "dense").string() + " --format " +
                           format + " --output " + (tmp / format).string() + " 2>&1");
    ASSERT_EQ(rc, 0) << out;
  }
  auto eval = [&](const fs::path& model) {
    auto [rc, out] = Shell(pstool + " eval --quiet --threads 2 --ctx 128 --max-windows 4 --model " +
                           model.string() + " --ppl " + (data / "code-eval.txt").string());
    EXPECT_EQ(rc, 0) << out;
    auto j = nlohmann::json::parse(out.substr(out.find('{')));
    return j["perplexity"][(data / "code-eval.txt").string()];
  };
  const auto dense = eval(tmp / "dense");
  ASSERT_TRUE(dense.contains("perplexity")) << dense.dump();
  EXPECT_GT(dense["perplexity"].get<double>(), 1.0);
  for (const char* format : {"compressed-tensors", "native"}) {
    const auto packed = eval(tmp / format);
    EXPECT_EQ(packed["perplexity"].get<double>(), dense["perplexity"].get<double>()) << format;
    EXPECT_EQ(packed["mean_nll"].get<double>(), dense["mean_nll"].get<double>()) << format;
    EXPECT_EQ(packed["windows"], dense["windows"]) << format;
  }
}

}  // namespace
}  // namespace ps::pack::testing

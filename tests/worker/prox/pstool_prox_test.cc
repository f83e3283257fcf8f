// pstool prox end to end on a small file it writes itself (and on the default model when present).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "common/safetensors.h"
#include "worker/io/tensor_io.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

// Runs pstool with `args`; returns its exit code and stdout.
int Pstool(const std::string& args, std::string& out) {
  const std::string cmd =
      std::string(PS_BINARY_DIR) + "/worker/tools/pstool " + args + " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  char buf[4096];
  out.clear();
  while (fgets(buf, sizeof buf, p)) out += buf;
  return WEXITSTATUS(pclose(p));
}

TEST(PstoolProx, FileToFileLinearTargets) {
  const fs::path dir = fs::temp_directory_path() / ("ps_pstool_prox_" + std::to_string(getpid()));
  fs::create_directories(dir);
  torch::manual_seed(0);
  auto q = (torch::randn({16, 32}) * 0.05).to(torch::kBFloat16);
  auto emb = torch::randn({10, 32}).to(torch::kBFloat16);
  SaveTensors(dir / "in.safetensors",
              {{"model.layers.0.self_attn.q_proj.weight", q}, {"model.embed_tokens.weight", emb}});
  std::string out;
  ASSERT_EQ(0, Pstool("prox --input " + (dir / "in.safetensors").string() + " --output " +
                          (dir / "out.safetensors").string() + " --lambda 1e6",
                      out));
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["tensors_processed"], 1);
  EXPECT_EQ(j["groups"], 16 * 8);
  EXPECT_DOUBLE_EQ(j["fractions"]["2:4_sparse"].get<double>(), 1.0);
  auto f = SafetensorsFile::Open(dir / "out.safetensors");
  EXPECT_TRUE(torch::equal(TensorView(*f, f->Get("model.embed_tokens.weight")), emb));
  auto w = TensorView(*f, f->Get("model.layers.0.self_attn.q_proj.weight"));
  EXPECT_TRUE(((w.reshape({-1, 4}) != 0).sum(1) <= 2).all().item<bool>());

  // Errors: bad lambda, bad pattern, missing input; nothing written.
  EXPECT_NE(0, Pstool("prox --input " + (dir / "in.safetensors").string() + " --output " +
                          (dir / "x.safetensors").string() + " --lambda -1",
                      out));
  EXPECT_NE(0, Pstool("prox --input " + (dir / "in.safetensors").string() + " --output " +
                          (dir / "x.safetensors").string() + " --lambda 1 --pattern 3:3",
                      out));
  EXPECT_NE(0, Pstool("prox --input " + (dir / "nope.safetensors").string() + " --output " +
                          (dir / "x.safetensors").string() + " --lambda 1",
                      out));
  EXPECT_FALSE(fs::exists(dir / "x.safetensors"));
  fs::remove_all(dir);
}

TEST(PstoolProx, DefaultModelDirectory) {
  const fs::path model = fs::path(PS_SHARED_DATA) / "codelm-19m";
  if (!fs::exists(model)) GTEST_SKIP() << "no " << model;
  const fs::path out_dir =
      fs::temp_directory_path() / ("ps_pstool_prox_m_" + std::to_string(getpid()));
  std::string out;
  ASSERT_EQ(0, Pstool("prox --input " + model.string() + " --output " + out_dir.string() +
                          " --lambda 5 --pattern 1:4",
                      out));
  const auto j = nlohmann::json::parse(out);
  EXPECT_EQ(j["tensors_processed"], 56);
  EXPECT_GT(j["fractions"]["1:4_sparse"].get<double>(), 0.0);
  EXPECT_TRUE(fs::exists(out_dir / "config.json"));
  EXPECT_TRUE(fs::exists(out_dir / "tokenizer.model"));
  auto ckpt = Checkpoint::Open(out_dir);
  EXPECT_EQ(ckpt.Names(), Checkpoint::Open(model).Names());
  fs::remove_all(out_dir);
}

}  // namespace
}  // namespace ps

// Checks on the real codelm-19m weights (skipped when ../shared/data is absent).
#include <gtest/gtest.h>
#include <torch/types.h>

#include <filesystem>

#include "common/safetensors.h"
#include "worker/io/tensor_io.h"
#include "worker/methods/calib_stats.h"
#include "worker/methods/nm_mask.h"
#include "worker/methods/one_shot.h"
#include "worker/methods/sparsegpt.h"

namespace ps {
namespace {

const std::filesystem::path kModel = std::filesystem::path(PS_SHARED_DATA) / "codelm-19m";

TEST(RealWeights, MagnitudeMasksAreValidAndHalve) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no " << kModel;
  auto ckpt = Checkpoint::Open(kModel);
  int64_t targets = 0;
  for (const auto& name : ckpt.Names()) {
    if (name.find("_proj.weight") == std::string::npos) continue;
    ++targets;
    auto w = TensorView(ckpt, name).to(torch::kFloat32);
    auto dense = ComputeGroupStats(w, k2of4);
    EXPECT_GT(dense.frac_dense(), 0.99) << name;  // trained weights: no exact zeros to speak of
    auto mask = MagnitudeMask(w, k2of4);
    auto pruned = ApplyMask(w, mask);
    auto st = ComputeGroupStats(pruned, k2of4);
    EXPECT_EQ(st.at_most_n, st.groups) << name;
    EXPECT_EQ(mask.sum().item<int64_t>(), w.numel() / 2);
    EXPECT_TRUE(UnpackMaskBits(PackMaskBits(mask), mask.sizes()).equal(mask));
  }
  EXPECT_EQ(targets, 8 * 7);
}

TEST(RealWeights, SparseGptMatchesReferenceOnARealLayer) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no " << kModel;
  auto ckpt = Checkpoint::Open(kModel);
  // Rows of a real weight, real-looking (correlated, anisotropic) inputs.
  auto w = TensorView(ckpt, "model.layers.3.self_attn.q_proj.weight")
               .to(torch::kFloat64)
               .slice(0, 0, 48);
  torch::manual_seed(21);
  auto x =
      torch::randn({1024, 384}, torch::kFloat64)
          .mm(torch::randn({384, 384}, torch::kFloat64) * 0.1 + torch::eye(384, torch::kFloat64))
          .mul(torch::linspace(0.01, 3.0, 384, torch::kFloat64));
  HessianStats hs(384, torch::kCPU);
  hs.Add(x);
  SparseGptOptions o;
  o.dtype = torch::kFloat64;
  auto fast = SparseGptPrune(w, hs.Hessian(), k2of4, o);
  auto ref = SparseGptPruneReference(w, hs.Hessian(), k2of4);
  EXPECT_TRUE(fast.mask.equal(ref.mask));
  EXPECT_TRUE(torch::allclose(fast.weight, ref.weight, 1e-9, 1e-9));
  // SparseGPT's reconstruction error is below Wanda's and magnitude's on the same inputs.
  auto err = [&](const torch::Tensor& wp) {
    return (x.mm((w - wp).t())).square().sum().item<double>();
  };
  ColumnNormStats cn(384, torch::kCPU);
  cn.Add(x);
  double e_sgpt = err(fast.weight);
  double e_wanda = err(ApplyMask(w, WandaMask(w, cn.Norms(), k2of4)));
  double e_mag = err(ApplyMask(w, MagnitudeMask(w, k2of4)));
  EXPECT_LT(e_sgpt, e_wanda);
  EXPECT_LT(e_wanda, e_mag);
}

}  // namespace
}  // namespace ps

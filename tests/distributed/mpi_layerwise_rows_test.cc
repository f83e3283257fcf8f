// Run under mpirun (ctest: distributed_layerwise_rows_np2 / _np3 / _np4). The layer-wise driver on
// row-sharded targets (methods/layerwise.h `rows`, parallel.shard: params): each rank prunes or
// reconstructs only its rows of every linear, from its own share of the samples with the
// statistics all-reduced, and gets the masks and weights of the unsharded one-rank run on all the
// samples: masks group for group (each rank holds its rows of them only), weights up to the
// statistics' summation order.
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>

#include "tests/testing/mpi_test_main.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/distributed/mpi_communicator.h"
#include "worker/distributed/parallelize_llama.h"
#include "worker/engine/layerwise_rows.h"
#include "worker/engine/method_runners.h"
#include "worker/methods/layerwise.h"

namespace ps {
namespace {

Communicator* g_comm = nullptr;

struct Case {
  std::string what;
  OneShotMethod method;
  bool true_sequential = true;
  const std::map<std::string, torch::Tensor>* fixed = nullptr;
  bool exact = false;
};

LayerwiseOptions Options(const Case& c) {
  LayerwiseOptions o;
  o.method = c.method;
  o.true_sequential = c.true_sequential;
  o.fixed_masks = c.fixed;
  o.fixed_masks_exact = c.exact;
  return o;
}

struct Pruned {
  LayerwiseResult result;
  std::map<std::string, torch::Tensor> weights;  // full, by module name
  std::map<std::string, RowBlock> rows;          // this rank's rows (sharded runs), by module name
};

std::string ModuleName(std::string weight_name) {
  weight_name.resize(weight_name.size() - std::string(".weight").size());
  return weight_name;
}

// The unsharded one-rank run on every sample (every rank computes it by itself).
Pruned Whole(const Case& c, const std::vector<std::vector<int32_t>>& samples) {
  auto model = testing::TinyModel(7, torch::kFloat32);
  Pruned r;
  r.result = PruneLayerwise(*model, samples, Options(c));
  for (const auto& l : model->TargetLinears()) r.weights[l->path()] = l->weight.detach().clone();
  return r;
}

// Row shards over the ranks, this rank's share of the samples.
Pruned Sharded(const Case& c, const std::vector<std::vector<int32_t>>& samples,
               Communicator& comm) {
  auto model = testing::TinyModel(7, torch::kFloat32);
  ShardedLinearWeights shards(model->TargetLinears(), comm);
  LayerwiseRows rows(shards);
  LayerwiseOptions o = Options(c);
  o.rows = &rows;
  o.all_reduce_sum = [&comm](torch::Tensor& t) { comm.AllReduceSum(t); };
  Pruned r;
  for (size_t i = 0; i < shards.size(); ++i)
    r.rows[ModuleName(shards.weight_name(i))] = shards.rows(i);
  // Row shards take (and give) this rank's rows of every mask.
  std::map<std::string, torch::Tensor> fixed_rows;
  if (c.fixed) {
    for (const auto& [name, m] : *c.fixed)
      fixed_rows[name] = m.narrow(0, r.rows.at(name).begin, r.rows.at(name).len).clone();
    o.fixed_masks = &fixed_rows;
  }
  r.result = PruneLayerwise(*model, RankSamples(samples, comm), o);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < shards.size(); ++i)
    r.weights[ModuleName(shards.weight_name(i))] = shards.Gather(i, shards.local(i).detach());
  return r;
}

TEST(LayerwiseRowsMpi, EveryMethodMatchesTheUnshardedRun) {
  Communicator& comm = *g_comm;
  ASSERT_GT(comm.size(), 1);
  // An odd count: the ranks get different numbers of samples (and with 3 ranks uneven rows).
  const auto samples = testing::TinySamples(7, 12, 3);
  const Pruned wanda_whole = Whole({"wanda", OneShotMethod::kWanda}, samples);
  const auto& fixed = wanda_whole.result.masks;
  const std::vector<Case> cases = {
      {"magnitude", OneShotMethod::kMagnitude},
      {"wanda", OneShotMethod::kWanda},
      {"sparsegpt", OneShotMethod::kSparseGpt},
      {"sparsegpt one round", OneShotMethod::kSparseGpt, false},
      {"reconstruct lsq", OneShotMethod::kSparseGpt, true, &fixed, true},
      {"reconstruct obs", OneShotMethod::kSparseGpt, true, &fixed, false},
  };
  for (const Case& c : cases) {
    const Pruned whole = Whole(c, samples);
    const Pruned sharded = Sharded(c, samples, comm);
    const std::string what =
        c.what + ", rank " + std::to_string(comm.rank()) + " of " + std::to_string(comm.size());
    ASSERT_EQ(whole.result.masks.size(), sharded.result.masks.size()) << what;
    EXPECT_EQ(whole.result.calibration_tokens, sharded.result.calibration_tokens) << what;
    for (const auto& [name, whole_mask] : whole.result.masks) {
      // The sharded run keeps only this rank's rows of each mask.
      const RowBlock rows = sharded.rows.at(name);
      const torch::Tensor& m_rows = sharded.result.masks.at(name);
      const torch::Tensor mine = whole_mask.narrow(0, rows.begin, rows.len);
      // (No ASSERT: every rank must reach the all-reduce below.)
      const bool same_shape = m_rows.sizes() == mine.sizes();
      EXPECT_TRUE(same_shape) << what << ": " << name << " rows " << m_rows.sizes();
      const int64_t differ =
          same_shape ? mine.ne(m_rows).reshape({-1, 4}).any(1).sum().item<int64_t>() : -1;
      EXPECT_EQ(differ, 0) << what << ": " << name << " groups differ";
      // The whole mask, gathered here for the weights' check below.
      const torch::Tensor m = [&] {
        torch::Tensor all = torch::zeros_like(whole_mask, torch::kUInt8);
        if (same_shape) all.narrow(0, rows.begin, rows.len).copy_(m_rows);
        comm.AllReduceSum(all);
        return all.to(torch::kBool);
      }();
      const torch::Tensor& w = sharded.weights.at(name);
      const double d = (whole.weights.at(name) - w).abs().max().item<double>();
      // Magnitude and Wanda keep W0's bits; the solves see Hessians summed in another order.
      const double tol = c.method == OneShotMethod::kSparseGpt ? 1e-5 : 0.0;
      EXPECT_LE(d, tol) << what << ": " << name;
      EXPECT_TRUE(w.ne(0).logical_and(m.logical_not()).sum().item<int64_t>() == 0) << what;
    }
    for (const auto& [name, e] : whole.result.sparsegpt_error)
      EXPECT_NEAR(e, sharded.result.sparsegpt_error.at(name), 1e-6 * (1 + std::abs(e))) << what;
  }
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) { return ps::testing::RunMpiTests(argc, argv, ps::g_comm); }

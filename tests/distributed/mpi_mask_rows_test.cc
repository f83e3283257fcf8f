// Run under mpirun (ctest: distributed_mask_rows_np2 / _np3 / _np4). Masks held as row blocks
// (parallel.shard: params on more than one rank, method_runners.h MasksHeldAsRows): every rank
// keeps only its rows of each target's mask, the same blocks as its weight rows, so the mask bytes
// a rank holds are its rows' share (about 1/N), not every whole mask; rank 0 gathers one mask at a
// time to publish (row_sharded_publish.h) and the masks.safetensors it writes from the row shards
// equals, byte for byte, the one written from the unsharded run's whole masks (and the earlier
// all-in-memory writer's).
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "common/progress.h"
#include "common/safetensors.h"
#include "tests/testing/mpi_test_main.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/distributed/mpi_communicator.h"
#include "worker/distributed/parallelize_llama.h"
#include "worker/engine/mask_file.h"
#include "worker/engine/method_runners.h"
#include "worker/engine/row_sharded_publish.h"
#include "worker/io/tensor_io.h"
#include "worker/methods/nm_mask.h"
#include "worker/models/llama_checkpoint.h"

namespace ps {
namespace {

Communicator* g_comm = nullptr;
constexpr char kHash[] = "0123abcd";

JobSpec Spec(const std::string& method, bool shard_params) {
  JobSpec spec;
  spec.pattern = k2of4;
  spec.seed = 3;
  spec.method.name = method;
  spec.method.lr = 1e-3;
  spec.method.warmup_ratio = 0.0;
  spec.method.max_steps = 2;
  spec.method.batch_size = 12;  // a multiple of 2, 3 and 4 ranks
  spec.checkpoint.every_steps = 0;
  spec.parallel.shard = shard_params ? "params" : "optimizer";
  return spec;
}

std::string ReadBytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Bytes of all targets' whole masks, and of this rank's rows of them.
struct Shares {
  int64_t whole = 0, rows = 0;
};
Shares MaskShares(const ShardedLinearWeights& shards) {
  Shares s;
  for (size_t i = 0; i < shards.size(); ++i) {
    const int64_t cols = shards.local(i).size(1);
    s.whole += shards.full_rows(i) * cols;
    s.rows += shards.rows(i).len * cols;
  }
  return s;
}

// Checks that `masks` are this rank's rows of every target (bytes = its share, the shares summing
// to the whole over ranks, about 1/N of it).
void ExpectRowShare(const MaskMap& masks, const ShardedLinearWeights& shards, Communicator& comm,
                    const std::string& what) {
  const Shares s = MaskShares(shards);
  const int64_t held = HeldMaskBytes(masks);
  EXPECT_EQ(held, s.rows) << what << ": rank " << comm.rank() << " holds " << held
                          << " mask bytes, its rows are " << s.rows << " of " << s.whole;
  EXPECT_LE(static_cast<double>(held), static_cast<double>(s.whole) / comm.size() * 1.25) << what;
  for (size_t i = 0; i < shards.size(); ++i) {
    const torch::Tensor& m = masks.at(shards.weight_name(i));
    EXPECT_EQ(m.size(0), shards.rows(i).len) << what << ": " << shards.weight_name(i);
    EXPECT_EQ(m.scalar_type(), torch::kBool) << what;
  }
  torch::Tensor total = torch::tensor({held}, torch::kInt64);
  comm.AllReduceSum(total);
  EXPECT_EQ(total.item<int64_t>(), s.whole) << what << ": the ranks' rows do not add up";
}

// Rank 0: masks.safetensors from the row shards (one mask gathered at a time); the other ranks
// serve. Returns the whole masks rank 0 saw (empty elsewhere).
MaskMap WriteFromRows(const std::filesystem::path& file, ShardedLinearWeights& shards,
                      const MaskMap& rows, const std::vector<std::string>& names,
                      Communicator& comm) {
  RowShardedPublisher pub(shards, names, rows, comm);
  MaskMap seen;
  if (comm.rank() != 0) {
    pub.ServeAll();
    return seen;
  }
  std::map<std::string, std::vector<int64_t>> shapes;
  for (size_t i = 0; i < shards.size(); ++i)
    shapes[shards.weight_name(i)] = {shards.full_rows(i), shards.local(i).size(1)};
  WriteMasksFile(
      file, shapes,
      [&](const std::string& name) {
        torch::Tensor m = pub.Mask(name);
        seen[name] = m;
        return m;
      },
      k2of4, kHash);
  pub.Finish();
  return seen;
}

TEST(MaskRowsMpi, OneShotMasksAreRowsAndTheMasksFileIsTheUnshardedOne) {
  Communicator& comm = *g_comm;
  ASSERT_GT(comm.size(), 1);
  const auto samples = testing::TinySamples(7, 12, 3);
  TeeProgressSink quiet({});
  for (const std::string method : {"magnitude", "wanda", "sparsegpt"}) {
    const std::string what =
        method + ", rank " + std::to_string(comm.rank()) + " of " + std::to_string(comm.size());
    // The unsharded run on all samples (every rank by itself).
    auto whole_model = testing::TinyModel(7, torch::kFloat32);
    auto one = MakeLocalCommunicator();
    const MaskMap whole =
        RunOneShot(*whole_model, method, Spec(method, false), samples, *one, quiet, false, nullptr);
    // Row shards.
    auto model = testing::TinyModel(7, torch::kFloat32);
    ShardedLinearWeights shards(model->TargetLinears(), comm);
    const JobSpec spec = Spec(method, true);
    ASSERT_TRUE(MasksHeldAsRows(spec, comm));
    const MaskMap rows =
        RunOneShot(*model, method, spec, samples, comm, quiet, false, nullptr, &shards);
    ExpectRowShare(rows, shards, comm, what);
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string& name = shards.weight_name(i);
      const RowBlock r = shards.rows(i);
      EXPECT_TRUE(rows.at(name).equal(whole.at(name).narrow(0, r.begin, r.len))) << what << name;
    }
    // masks.safetensors from the rows = from the whole masks = the all-in-memory writer's.
    const std::filesystem::path dir = testing::TempDir("mask_rows_" + method);
    std::vector<std::string> names;
    for (const auto& [name, m] : whole) names.push_back(name);
    const MaskMap seen = WriteFromRows(dir / "rows.safetensors", shards, rows, names, comm);
    if (comm.rank() == 0) {
      ASSERT_EQ(seen.size(), whole.size()) << what;
      for (const auto& [name, m] : whole) EXPECT_TRUE(seen.at(name).equal(m)) << what << name;
      std::map<std::string, std::vector<int64_t>> shapes;
      std::vector<std::pair<std::string, torch::Tensor>> packed;
      nlohmann::json shape_meta = nlohmann::json::object();
      for (const auto& [name, m] : whole) {
        shapes[name] = m.sizes().vec();
        packed.emplace_back(name, PackMaskBits(m));
        shape_meta[name] = m.sizes().vec();
      }
      WriteMasksFile(
          dir / "whole.safetensors", shapes, [&](const std::string& n) { return whole.at(n); },
          k2of4, kHash);
      SaveTensors(dir / "in_memory.safetensors", packed,
                  {{"format", "proxsparse-masks-v1"},
                   {"pattern", k2of4.ToString()},
                   {"bit_order", "little"},
                   {"shapes", shape_meta.dump()},
                   {"base_model_sha256", kHash}});
      const std::string from_rows = ReadBytes(dir / "rows.safetensors");
      EXPECT_GT(from_rows.size(), 0u);
      EXPECT_TRUE(from_rows == ReadBytes(dir / "whole.safetensors")) << what;
      EXPECT_TRUE(from_rows == ReadBytes(dir / "in_memory.safetensors")) << what;
    }
    comm.Barrier();
  }
}

TEST(MaskRowsMpi, ProxSparseAndTheMaskedUpdateHoldRows) {
  Communicator& comm = *g_comm;
  const auto samples = testing::TinySamples(12, 10, 5);
  TeeProgressSink quiet({});
  auto model = testing::TinyModel(4, torch::kFloat32);
  const std::filesystem::path out = testing::TempDir("mask_rows_proxsparse");
  JobSpec spec = Spec("proxsparse", true);
  spec.method.lambda1 = 0.5;
  spec.model = out / "model";  // W0, read by ProxSparse's hooks
  SaveLlama(*model, spec.model);
  ShardedLinearWeights shards(model->TargetLinears(), comm);
  MaskMap masks;
  RunProxSparse(*model, spec, samples, out, false, comm, quiet, masks, &shards);
  ExpectRowShare(masks, shards, comm, "proxsparse");
  // The masked update reads the same rows: its weights end zero outside them.
  spec.masked_update.steps = 1;
  spec.masked_update.lr = 1e-3;
  RunMaskedUpdate(*model, spec, masks, samples, out, comm, quiet, &shards);
  for (size_t i = 0; i < shards.size(); ++i) {
    const torch::Tensor& m = masks.at(shards.weight_name(i));
    EXPECT_EQ((shards.local(i).detach().ne(0) & m.logical_not()).sum().item<int64_t>(), 0)
        << shards.weight_name(i);
  }
  EXPECT_EQ(HeldMaskBytes(masks), MaskShares(shards).rows);
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) { return ps::testing::RunMpiTests(argc, argv, ps::g_comm); }

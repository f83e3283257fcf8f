// Run under mpirun with 2 ranks (ctest: distributed_overlap_update_np2). TrainOptions::
// overlap_update on several ranks: each owner updates its tensors inside the last backward pass,
// as their reduces are launched, and the published weights and masks are bit-identical to the
// serial path's (the same reduces, the same per-tensor operations), on every rank.
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdlib>
#include <memory>

#include "tests/testing/mpi_test_main.h"
#include "tests/worker/engine/overlap_update_fixture.h"
#include "worker/distributed/mpi_communicator.h"

namespace ps {
namespace {

Communicator* g_comm = nullptr;

TEST(OverlapUpdateMpi, BitIdenticalToSerialOnEveryRank) {
  Communicator& comm = *g_comm;
  for (int accum : {1, 2}) {
    for (double lambda2 : {0.0, 0.5}) {
      testing::OverlapCase c;
      c.grad_accum = accum;
      c.lambda2 = lambda2;
      const testing::OverlapRun serial = testing::RunOverlapCase(comm, c);
      c.overlap_update = true;
      const testing::OverlapRun over = testing::RunOverlapCase(comm, c);
      const std::string what = "rank " + std::to_string(comm.rank()) + " accum " +
                               std::to_string(accum) + " lambda2 " + std::to_string(lambda2);
      ASSERT_EQ(serial.weights.size(), over.weights.size());
      for (size_t i = 0; i < over.weights.size(); ++i) {
        EXPECT_TRUE(torch::equal(serial.weights[i], over.weights[i])) << what << " weight " << i;
        EXPECT_TRUE(torch::equal(serial.masks[i], over.masks[i])) << what << " mask " << i;
        // Every rank holds the owner's published weights.
        torch::Tensor r0 = over.weights[i].clone();
        comm.Broadcast(r0, 0);
        EXPECT_TRUE(torch::equal(r0, over.weights[i])) << what << " weight " << i;
      }
      EXPECT_EQ(serial.final_loss, over.final_loss) << what;
      // The ownership is split and each owner updated all it owns during backward.
      EXPECT_GT(over.owned, 0) << what;
      EXPECT_LT(over.owned, static_cast<int64_t>(over.weights.size())) << what;
      EXPECT_EQ(over.updated_during_backward, over.owned) << what;
    }
  }
}

// Activation checkpointing and the offloaded optimizer on several ranks: the same weights and
// masks as the plain serial run, on every rank (the same gradients, the same CPU AdamW).
TEST(OverlapUpdateMpi, CheckpointingAndOffloadMatchThePlainRun) {
  Communicator& comm = *g_comm;
  for (bool overlap : {false, true}) {
    testing::OverlapCase c;
    c.lambda2 = 0.5;
    c.overlap_update = overlap;
    const testing::OverlapRun plain = testing::RunOverlapCase(comm, c);
    c.activation_checkpointing = true;
    c.offload = true;
    const testing::OverlapRun other = testing::RunOverlapCase(comm, c);
    const std::string what =
        "rank " + std::to_string(comm.rank()) + " overlap " + std::to_string(overlap);
    ASSERT_EQ(plain.weights.size(), other.weights.size());
    for (size_t i = 0; i < other.weights.size(); ++i) {
      EXPECT_TRUE(torch::equal(plain.weights[i], other.weights[i])) << what << " weight " << i;
      EXPECT_TRUE(torch::equal(plain.masks[i], other.masks[i])) << what << " mask " << i;
    }
    EXPECT_EQ(plain.final_loss, other.final_loss) << what;
  }
}

// Sharded parameters on several ranks: each rank trains its rows of every target (gathered per
// layer, gradients reduce-scattered); the gathered weights and masks equal the optimizer-sharded
// run's on every rank.
TEST(OverlapUpdateMpi, ShardedParametersMatchTheOptimizerShardedRun) {
  Communicator& comm = *g_comm;
  for (bool overlap : {false, true}) {
    testing::OverlapCase c;
    c.lambda2 = 0.5;
    c.overlap_update = overlap;
    const testing::OverlapRun plain = testing::RunOverlapCase(comm, c);
    c.shard_params = true;
    const testing::OverlapRun sharded = testing::RunOverlapCase(comm, c);
    const std::string what =
        "rank " + std::to_string(comm.rank()) + " overlap " + std::to_string(overlap);
    ASSERT_EQ(plain.weights.size(), sharded.weights.size());
    for (size_t i = 0; i < sharded.weights.size(); ++i) {
      EXPECT_TRUE(torch::equal(plain.weights[i], sharded.weights[i])) << what << " weight " << i;
      EXPECT_TRUE(torch::equal(plain.masks[i], sharded.masks[i])) << what << " mask " << i;
    }
    EXPECT_EQ(plain.final_loss, sharded.final_loss) << what;
    // Every rank holds rows of every target.
    EXPECT_EQ(sharded.owned, static_cast<int64_t>(sharded.weights.size())) << what;
  }
}

// More ranks than sequences in a step: a rank with no data runs no backward, checks the loss
// before its reduces like the others, and updates what it owns after backward.
TEST(OverlapUpdateMpi, RanksWithoutDataUpdateAfterBackward) {
  Communicator& comm = *g_comm;
  testing::OverlapCase c;
  c.lambda2 = 0.5;
  c.seqs_per_step = 1;
  const testing::OverlapRun serial = testing::RunOverlapCase(comm, c);
  c.overlap_update = true;
  const testing::OverlapRun over = testing::RunOverlapCase(comm, c);
  for (size_t i = 0; i < over.weights.size(); ++i)
    EXPECT_TRUE(torch::equal(serial.weights[i], over.weights[i])) << "weight " << i;
  // RankShare splits a step's sequences into contiguous ranges: the one sequence goes to the last
  // rank, and the others run no backward.
  if (comm.rank() == comm.size() - 1) {
    EXPECT_EQ(over.updated_during_backward, over.owned);
  } else {
    EXPECT_EQ(over.updated_during_backward, 0);
  }
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) { return ps::testing::RunMpiTests(argc, argv, ps::g_comm); }

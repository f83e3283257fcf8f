// Sharded parameters (worker/distributed/parallelize_llama.h) on one rank: row shards never split
// an N:M group and cover every row once; shard names round-trip; checkpoint state is re-cut for
// another rank count; and training through them gives the plain run's weights and masks bit for
// bit (one rank: the gather is a copy, the checkpointed rerun computes the same numbers). The
// multi-rank equivalence runs under MPI (tests/distributed).
#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/worker/engine/overlap_update_fixture.h"
#include "worker/distributed/parallelize_llama.h"

namespace ps {
namespace {

TEST(RowShard, CoversEveryRowOnceInOrder) {
  for (int64_t rows : {1, 7, 8, 64, 1000}) {
    for (int ranks : {1, 2, 3, 4, 8}) {
      int64_t next = 0;
      for (int r = 0; r < ranks; ++r) {
        RowBlock rr = RowShard(rows, r, ranks);
        EXPECT_EQ(rr.begin, next);
        EXPECT_LE(rr.len, rows / ranks + 1);
        EXPECT_GE(rr.len, rows / ranks);
        next += rr.len;
      }
      EXPECT_EQ(next, rows);
    }
  }
  EXPECT_THROW(RowShard(8, 2, 2), Error);
}

TEST(RowShard, NamesRoundTrip) {
  const std::string n = RowShardName("model.layers.0.mlp.up_proj.weight", {12, 5});
  EXPECT_EQ(n, "model.layers.0.mlp.up_proj.weight#rows=12:5");
  auto p = ParseRowShardName(n);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->first, "model.layers.0.mlp.up_proj.weight");
  EXPECT_EQ(p->second.begin, 12);
  EXPECT_EQ(p->second.len, 5);
  EXPECT_FALSE(ParseRowShardName("model.norm.weight"));
  EXPECT_FALSE(ParseRowShardName("w#rows=1:x"));
}

TEST(RowShard, CheckpointStateIsRecutForAnotherRankCount) {
  torch::Tensor full = torch::arange(10 * 4, torch::kFloat32).reshape({10, 4});
  std::map<std::string, torch::Tensor> state;
  for (int r = 0; r < 2; ++r) {  // written by 2 ranks
    RowBlock rr = RowShard(10, r, 2);
    const std::string n = RowShardName("w", rr);
    state[n + ".master"] = full.narrow(0, rr.begin, rr.len).clone();
    state[n + ".exp_avg"] = 2 * full.narrow(0, rr.begin, rr.len);
  }
  std::vector<std::string> wanted;
  for (int r = 0; r < 3; ++r) wanted.push_back(RowShardName("w", RowShard(10, r, 3)));
  ReshardRowState(state, wanted);
  for (int r = 0; r < 3; ++r) {
    RowBlock rr = RowShard(10, r, 3);
    EXPECT_TRUE(torch::equal(state.at(wanted[r] + ".master"), full.narrow(0, rr.begin, rr.len)));
    EXPECT_TRUE(
        torch::equal(state.at(wanted[r] + ".exp_avg"), 2 * full.narrow(0, rr.begin, rr.len)));
  }
  // Rows no shard holds: a clear error.
  std::map<std::string, torch::Tensor> gap = {{"w#rows=0:4.master", full.narrow(0, 0, 4)}};
  EXPECT_THROW(ReshardRowState(gap, {"w#rows=0:6"}), Error);
}

TEST(ShardedParams, OneRankTrainingEqualsThePlainRun) {
  auto comm = MakeLocalCommunicator();
  for (bool overlap : {false, true}) {
    testing::OverlapCase c;
    c.lambda2 = 0.5;
    c.overlap_update = overlap;
    const testing::OverlapRun plain = testing::RunOverlapCase(*comm, c);
    c.shard_params = true;
    const testing::OverlapRun sharded = testing::RunOverlapCase(*comm, c);
    ASSERT_EQ(plain.weights.size(), sharded.weights.size());
    for (size_t i = 0; i < plain.weights.size(); ++i) {
      EXPECT_TRUE(torch::equal(plain.weights[i], sharded.weights[i])) << "weight " << i;
      EXPECT_TRUE(torch::equal(plain.masks[i], sharded.masks[i])) << "mask " << i;
    }
    EXPECT_EQ(plain.final_loss, sharded.final_loss);
  }
}

}  // namespace
}  // namespace ps

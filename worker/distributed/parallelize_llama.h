// Fully sharded parameters (ZeRO-3 / FSDP style) for a plain LlamaForCausalLM, applied from outside
// the model like torchtitan's parallelize_* functions: the model code knows nothing of it.
//
// ShardLinearRows(linears, comm) gives every rank 1/N of each listed linear's weight: a contiguous
// block of whole rows (the N:M groups run along a row, so no group is ever split; ranks get
// rows/N, the first rows % N ranks one more). The full weights are freed; each Linear's forward
// goes through a weight transform that all-gathers the rows (one Broadcast per rank, in rank order,
// through the job's Communicator: NCCL on GPUs, MPI on CPU), and its backward reduce-scatters
// the full gradient (one ReduceSum per rank into that rank's rows), so each rank's shard receives
// the gradient summed over ranks, as ShardedAdamW's owners do. The gathered weight lives only as
// long as autograd keeps it: with activation checkpointing (which the training loop turns on in
// this mode) a layer's weights are gathered for its forward, freed, and gathered again when its
// backward reruns it.
//
// On one rank nothing is sharded: each shard is the linear's own weight (no gather, no copy).
//
// Every rank must run the same sequence of forward and backward passes (the collectives pair up by
// order): the job runner requires the global batch to divide evenly over the ranks.
#pragma once

#include <torch/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "worker/distributed/communicator.h"
#include "worker/distributed/sharded_adamw.h"
#include "worker/models/llama_model.h"

namespace ps {

struct RowBlock {
  int64_t begin = 0, len = 0;
};

// Rank `rank`'s rows of `rows` split over `ranks`.
RowBlock RowShard(int64_t rows, int rank, int ranks);

// "NAME#rows=BEGIN:LEN" and back.
std::string RowShardName(const std::string& name, RowBlock r);
std::optional<std::pair<std::string, RowBlock>> ParseRowShardName(const std::string& shard_name);

class ShardedLinearWeights {
 public:
  // Shards the weights of `linears` (all ranks pass the same list). Each shard is a new leaf that
  // requires grad; the linears' full weights are released (they stop requiring grad). On one rank
  // the shards are the weights themselves.
  ShardedLinearWeights(const std::vector<std::shared_ptr<Linear>>& linears, Communicator& comm);
  // The same from rows read straight from the checkpoint (sharded_load.h): `rows` holds this
  // rank's RowShard block of every listed linear's weight, by weight name; the linears' weights
  // are left as they are (0-element: never loaded). On one rank use the constructor above.
  ShardedLinearWeights(const std::vector<std::shared_ptr<Linear>>& linears, Communicator& comm,
                       std::map<std::string, torch::Tensor> rows);
  ~ShardedLinearWeights();
  ShardedLinearWeights(const ShardedLinearWeights&) = delete;
  ShardedLinearWeights& operator=(const ShardedLinearWeights&) = delete;

  // This rank's shards as the optimizer's tensors, named RowShardName(weight name, rows).
  std::vector<TrainableTensor> Trainables() const;
  size_t size() const { return shards_.size(); }
  // The full [rows, cols] tensor whose rows this rank holds as `part` of shard i (every rank
  // calls it, in the same order; `part` has this rank's rows), on every rank.
  torch::Tensor Gather(size_t i, const torch::Tensor& part);
  // The weight name of shard i ("model.layers.0.self_attn.q_proj.weight").
  const std::string& weight_name(size_t i) const { return shards_[i].name; }
  // Shard i's rows on this rank: which, and the trained tensor holding them.
  RowBlock rows(size_t i) const { return shards_[i].ranges[static_cast<size_t>(comm_.rank())]; }
  const torch::Tensor& local(size_t i) const { return shards_[i].local; }
  // Shard i's linear uses its full weight, all-gathered now from every rank's current rows, for
  // every forward until ReleaseWhole(i) (no gather per forward): the layer-wise driver runs all
  // calibration samples through one layer at a time, so a layer is gathered once per pass instead
  // of once per sample, and each rank runs its own share of the samples (no pairing of forwards
  // across ranks). Every rank calls both, in the same order. No-ops on one rank.
  void HoldWhole(size_t i);
  void ReleaseWhole(size_t i);

 private:
  struct Shard {
    std::string name;
    std::shared_ptr<Linear> linear;
    int64_t rows = 0;
    std::vector<RowBlock> ranges;  // per rank
    torch::Tensor local;           // this rank's rows, a leaf
  };
  // Routes the linear's forward through the all-gather of s.local (more than one rank).
  void InstallGather(Shard& s);

  Communicator& comm_;
  std::vector<Shard> shards_;
};

// Checkpoint state across rank counts: for every wanted shard name (RowShardName form) and every
// suffix present in `state` for some row shard of the same weight (".master", ".exp_avg", ...),
// adds "WANTED.suffix" cut from the rows the state holds (the union of all ranks' shards), unless
// present. ps::Error when the held rows do not cover the wanted ones.
void ReshardRowState(std::map<std::string, torch::Tensor>& state,
                     const std::vector<std::string>& wanted);

}  // namespace ps

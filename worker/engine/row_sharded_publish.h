// Publishing a row-sharded job (parallel.shard: params on more than one rank): every rank holds
// only its rows of each target's weight and of each target's mask (method_runners.h
// MasksHeldAsRows), and rank 0 writes masks.safetensors, the published model and the validity
// checks holding one whole tensor at a time: it asks for each from inside its writers (Next for a
// changed weight, Mask for a mask) and the other ranks serve every request (ServeAll) until rank 0
// calls Finish. Each request is broadcast by rank 0 first, so rank 0 may ask for masks in any
// order and more than once; changed weights come in the writer's order (the base checkpoint's
// tensor names, in order).
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "worker/distributed/communicator.h"
#include "worker/distributed/parallelize_llama.h"
#include "worker/engine/method_runners.h"

namespace ps {

class RowShardedPublisher {
 public:
  // `checkpoint_names`: the base checkpoint's tensor names in the writer's order (Names()).
  // `mask_rows`: this rank's rows of every target's mask, by weight name (the same blocks as
  // `shards`' rows; ps::Error naming the target otherwise). Both must outlive the publisher.
  RowShardedPublisher(ShardedLinearWeights& shards,
                      const std::vector<std::string>& checkpoint_names, const MaskMap& mask_rows,
                      Communicator& comm);
  // Rank 0: releases the serving ranks if Finish was not called (an error on rank 0).
  ~RowShardedPublisher();
  RowShardedPublisher(const RowShardedPublisher&) = delete;
  RowShardedPublisher& operator=(const RowShardedPublisher&) = delete;

  // Collective: true when `go` holds on every rank (rank 0 passes false when the job was
  // cancelled: then no rank gathers anything).
  bool AgreeToPublish(bool go);
  // Rank 0: target `name`'s weight whole (the ranks' current rows). ps::Error when it is not the
  // next target in order.
  torch::Tensor Next(const std::string& name);
  // Rank 0: target `name`'s mask whole (bool, CPU), gathered from every rank's rows. The other
  // ranks hold one rank's block of it at a time, never the whole.
  torch::Tensor Mask(const std::string& name);
  // Rank 0: ends the other ranks' ServeAll.
  void Finish();
  // The other ranks: take part in each of rank 0's requests until it calls Finish.
  void ServeAll();
  // Whether every target's weight has been gathered (Next).
  bool done() const { return next_ == order_.size(); }

 private:
  enum Request : int64_t { kFinish = 0, kWeight = 1, kMask = 2 };
  void Send(Request what, size_t index);  // rank 0
  torch::Tensor GatherNext();
  torch::Tensor GatherMask(size_t i);  // the whole mask on rank 0; undefined elsewhere
  ShardedLinearWeights& shards_;
  const MaskMap& mask_rows_;
  Communicator& comm_;
  std::vector<size_t> order_;            // shard indices in publishing order
  std::map<std::string, size_t> index_;  // weight name -> shard
  size_t next_ = 0;
  bool finished_ = false;
};

}  // namespace ps

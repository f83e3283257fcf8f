// Publishing the changed weights of a row-sharded model (parallel.shard: params on more than one
// rank: reconstruction or the masked update changed the rows): rank 0 writes the published model
// tensor by tensor (pruned_model.h) and holds a target whole only while it writes it. Gathering a
// target is collective, so every rank gathers the targets in one order, the one the writer visits
// them in (the base checkpoint's tensor names, in order): rank 0 asks for each from inside the
// writer with Next(name), the other ranks call ServeAll() meanwhile.
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

#include "worker/distributed/communicator.h"
#include "worker/distributed/parallelize_llama.h"

namespace ps {

class RowShardedPublisher {
 public:
  // `checkpoint_names`: the base checkpoint's tensor names in the writer's order (Names()).
  RowShardedPublisher(ShardedLinearWeights& shards,
                      const std::vector<std::string>& checkpoint_names, Communicator& comm);
  // Collective: true when `go` holds on every rank (rank 0 passes false when the job was
  // cancelled: then no rank gathers anything).
  bool AgreeToPublish(bool go);
  // Rank 0: target `name` whole (collective with the other ranks' ServeAll). ps::Error when it is
  // not the next target in order.
  torch::Tensor Next(const std::string& name);
  // The other ranks: take part in every target's gather, in order.
  void ServeAll();
  // Whether every target has been gathered.
  bool done() const { return next_ == order_.size(); }

 private:
  torch::Tensor GatherNext();
  ShardedLinearWeights& shards_;
  Communicator& comm_;
  std::vector<size_t> order_;  // shard indices in publishing order
  size_t next_ = 0;
};

}  // namespace ps

// The layer-wise driver's row-sharded targets (methods/layerwise.h RowShardedTargets) over the
// rows a model was loaded with for parallel.shard: params (distributed/sharded_load.h): the
// baselines, the one-shot methods and the reconstruction then prune each rank's own rows.
#pragma once

#include <map>
#include <string>

#include "worker/distributed/parallelize_llama.h"
#include "worker/methods/layerwise.h"

namespace ps {

class LayerwiseRows : public RowShardedTargets {
 public:
  explicit LayerwiseRows(ShardedLinearWeights& shards);
  torch::Tensor Local(const Linear& lin) override;
  int64_t FirstRow(const Linear& lin) override;
  torch::Tensor Gather(const Linear& lin, const torch::Tensor& part) override;
  void Hold(Linear& lin) override;
  void Release(Linear& lin) override;

 private:
  size_t Index(const Linear& lin) const;  // ps::Error for a linear that is not sharded
  ShardedLinearWeights& shards_;
  std::map<std::string, size_t> index_;  // weight name -> shard
};

}  // namespace ps

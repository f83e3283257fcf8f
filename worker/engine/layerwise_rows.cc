#include "worker/engine/layerwise_rows.h"

#include "common/error.h"

namespace ps {

LayerwiseRows::LayerwiseRows(ShardedLinearWeights& shards) : shards_(shards) {
  for (size_t i = 0; i < shards.size(); ++i) index_[shards.weight_name(i)] = i;
}

size_t LayerwiseRows::Index(const Linear& lin) const {
  auto it = index_.find(lin.path() + ".weight");
  if (it == index_.end()) throw Error("row-sharded pruning: " + lin.path() + " is not sharded");
  return it->second;
}

torch::Tensor LayerwiseRows::Local(const Linear& lin) { return shards_.local(Index(lin)); }

int64_t LayerwiseRows::FirstRow(const Linear& lin) { return shards_.rows(Index(lin)).begin; }

torch::Tensor LayerwiseRows::Gather(const Linear& lin, const torch::Tensor& part) {
  return shards_.Gather(Index(lin), part);
}

void LayerwiseRows::Hold(Linear& lin) { shards_.HoldWhole(Index(lin)); }

void LayerwiseRows::Release(Linear& lin) { shards_.ReleaseWhole(Index(lin)); }

}  // namespace ps

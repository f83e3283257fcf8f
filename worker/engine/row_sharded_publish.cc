#include "worker/engine/row_sharded_publish.h"

#include <map>

#include "common/error.h"

namespace ps {

RowShardedPublisher::RowShardedPublisher(ShardedLinearWeights& shards,
                                         const std::vector<std::string>& checkpoint_names,
                                         Communicator& comm)
    : shards_(shards), comm_(comm) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < shards.size(); ++i) index[shards.weight_name(i)] = i;
  for (const auto& name : checkpoint_names) {
    auto it = index.find(name);
    if (it != index.end()) order_.push_back(it->second);
  }
  if (order_.size() != shards.size())
    throw Error("publishing: the checkpoint lacks some of the sharded targets");
}

bool RowShardedPublisher::AgreeToPublish(bool go) {
  const torch::Tensor& any = shards_.local(0);
  torch::Tensor stop = torch::full({1}, go ? 0.0 : 1.0, any.options().dtype(torch::kFloat32));
  comm_.AllReduceSum(stop);
  return stop.item<float>() == 0.0f;
}

torch::Tensor RowShardedPublisher::GatherNext() {
  const size_t i = order_.at(next_++);
  torch::NoGradGuard no_grad;
  return shards_.Gather(i, shards_.local(i).detach());
}

torch::Tensor RowShardedPublisher::Next(const std::string& name) {
  if (next_ >= order_.size() || shards_.weight_name(order_[next_]) != name)
    throw Error("publishing: " + name + " was asked for out of order (expected " +
                (next_ < order_.size() ? shards_.weight_name(order_[next_]) : "none") + ")");
  return GatherNext();
}

void RowShardedPublisher::ServeAll() {
  while (next_ < order_.size()) GatherNext();
}

}  // namespace ps

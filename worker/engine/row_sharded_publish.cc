#include "worker/engine/row_sharded_publish.h"

#include <cstdio>
#include <map>

#include "common/error.h"

namespace ps {

RowShardedPublisher::RowShardedPublisher(ShardedLinearWeights& shards,
                                         const std::vector<std::string>& checkpoint_names,
                                         const MaskMap& mask_rows, Communicator& comm)
    : shards_(shards), mask_rows_(mask_rows), comm_(comm) {
  for (size_t i = 0; i < shards.size(); ++i) index_[shards.weight_name(i)] = i;
  for (const auto& name : checkpoint_names) {
    auto it = index_.find(name);
    if (it != index_.end()) order_.push_back(it->second);
  }
  if (order_.size() != shards.size())
    throw Error("publishing: the checkpoint lacks some of the sharded targets");
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string& name = shards.weight_name(i);
    auto it = mask_rows.find(name);
    if (it == mask_rows.end()) throw Error("publishing: no mask for " + name);
    const torch::Tensor& local = shards.local(i);
    if (it->second.dim() != 2 || it->second.size(0) != shards.rows(i).len ||
        it->second.size(1) != local.size(1))
      throw Error("publishing: this rank's mask rows of " + name + " have shape " +
                  c10::str(it->second.sizes()) + ", its weight rows " + c10::str(local.sizes()));
  }
}

RowShardedPublisher::~RowShardedPublisher() {
  if (comm_.rank() != 0 || finished_) return;
  try {
    Finish();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "publishing: cannot release the other ranks: %s\n", e.what());
  }
}

bool RowShardedPublisher::AgreeToPublish(bool go) {
  const torch::Tensor& any = shards_.local(0);
  torch::Tensor stop = torch::full({1}, go ? 0.0 : 1.0, any.options().dtype(torch::kFloat32));
  comm_.AllReduceSum(stop);
  return stop.item<float>() == 0.0f;
}

void RowShardedPublisher::Send(Request what, size_t index) {
  torch::Tensor r =
      torch::tensor({static_cast<int64_t>(what), static_cast<int64_t>(index)}, torch::kInt64)
          .to(shards_.local(0).device());
  comm_.Broadcast(r, 0);
}

torch::Tensor RowShardedPublisher::GatherNext() {
  const size_t i = order_.at(next_++);
  torch::NoGradGuard no_grad;
  return shards_.Gather(i, shards_.local(i).detach());
}

torch::Tensor RowShardedPublisher::GatherMask(size_t i) {
  const torch::Tensor& mine = mask_rows_.at(shards_.weight_name(i));
  const torch::Device device = shards_.local(i).device();
  const int64_t rows = shards_.full_rows(i), cols = mine.size(1);
  const bool root = comm_.rank() == 0;
  torch::Tensor whole = root ? torch::empty({rows, cols}, torch::kBool) : torch::Tensor();
  // One Broadcast per rank, in rank order, of that rank's block: every rank holds at most one
  // block of another rank's at a time; rank 0 copies each into the whole mask.
  for (int r = 0; r < comm_.size(); ++r) {
    const RowBlock b = RowShard(rows, r, comm_.size());
    if (b.len == 0) continue;
    torch::Tensor block =
        r == comm_.rank() ? mine.to(device, torch::kUInt8).contiguous()
                          : torch::empty({b.len, cols}, torch::dtype(torch::kUInt8).device(device));
    comm_.Broadcast(block, r);
    if (root) whole.narrow(0, b.begin, b.len).copy_(block.to(torch::kCPU, torch::kBool));
  }
  return whole;
}

torch::Tensor RowShardedPublisher::Next(const std::string& name) {
  if (comm_.rank() != 0) throw Error("publishing: only rank 0 asks for weights");
  if (next_ >= order_.size() || shards_.weight_name(order_[next_]) != name)
    throw Error("publishing: " + name + " was asked for out of order (expected " +
                (next_ < order_.size() ? shards_.weight_name(order_[next_]) : "none") + ")");
  Send(kWeight, next_);
  return GatherNext();
}

torch::Tensor RowShardedPublisher::Mask(const std::string& name) {
  if (comm_.rank() != 0) throw Error("publishing: only rank 0 asks for masks");
  auto it = index_.find(name);
  if (it == index_.end()) throw Error("publishing: " + name + " is not a sharded target");
  Send(kMask, it->second);
  return GatherMask(it->second);
}

void RowShardedPublisher::Finish() {
  if (comm_.rank() != 0 || finished_) return;
  finished_ = true;
  Send(kFinish, 0);
}

void RowShardedPublisher::ServeAll() {
  if (comm_.rank() == 0) throw Error("publishing: rank 0 asks, the other ranks serve");
  for (;;) {
    torch::Tensor r =
        torch::empty({2}, torch::dtype(torch::kInt64).device(shards_.local(0).device()));
    comm_.Broadcast(r, 0);
    r = r.cpu();
    const int64_t what = r[0].item<int64_t>(), index = r[1].item<int64_t>();
    if (what == kFinish) return;
    if (what == kWeight) {
      if (static_cast<size_t>(index) != next_)
        throw Error("publishing: rank 0 asked for weight " + std::to_string(index) +
                    " while this rank is at " + std::to_string(next_));
      GatherNext();
    } else if (what == kMask && index >= 0 && static_cast<size_t>(index) < shards_.size()) {
      GatherMask(static_cast<size_t>(index));
    } else {
      throw Error("publishing: unknown request " + std::to_string(what) + " " +
                  std::to_string(index));
    }
  }
}

}  // namespace ps

#include "worker/engine/owned_tensors.h"

namespace ps {

OwnedTensor ViewOf(ShardedAdamW& opt, size_t i) {
  return OwnedTensor{i, opt.name(i), opt.param(i), opt.master(i), opt.grad(i), RowRange{}};
}

std::vector<size_t> OwnedIndices(const ShardedAdamW& opt) {
  std::vector<size_t> owned;
  for (size_t i = 0; i < opt.size(); ++i)
    if (opt.Owns(i)) owned.push_back(i);
  return owned;
}

void ForEachOwned(ShardedAdamW& opt, const std::function<void(OwnedTensor&)>& fn) {
  for (size_t i : OwnedIndices(opt)) {
    OwnedTensor t = ViewOf(opt, i);
    fn(t);
  }
}

ShardedAdamW::TensorUpdateFns PerTensorHooks(ShardedAdamW& opt, TrainHooks& hooks) {
  return {[&opt, &hooks](size_t i) {
            OwnedTensor t = ViewOf(opt, i);
            hooks.BeforeUpdate(t);
          },
          [&opt, &hooks](size_t i) {
            OwnedTensor t = ViewOf(opt, i);
            hooks.AfterUpdate(t);
          }};
}

torch::Tensor GatherFromOwners(ShardedAdamW& opt, Communicator& comm, size_t i,
                               torch::ScalarType dtype,
                               const std::function<torch::Tensor(const OwnedTensor&)>& part) {
  torch::Tensor full =
      opt.Owns(i) ? part(ViewOf(opt, i)).to(dtype)
                  : torch::zeros(opt.param(i).sizes(), opt.param(i).options().dtype(dtype));
  comm.Broadcast(full, opt.plan().owner[i]);
  return full;
}

}  // namespace ps

// The one place the engine asks the optimizer which trainable tensors (or which slices of them)
// this rank updates, and turns each into the OwnedTensor view methods work on
// (worker/methods/train_hooks.h). Today a rank owns whole tensors (ShardedAdamW's ownership
// plan); a fully-sharded-parameters optimizer plugs in here by giving each view its row range.
#pragma once

#include <functional>
#include <vector>

#include "worker/distributed/sharded_adamw.h"
#include "worker/methods/train_hooks.h"

namespace ps {

// The view of owned tensor i (ps::Error if this rank does not own it).
OwnedTensor ViewOf(ShardedAdamW& opt, size_t i);
// Indices of the tensors this rank owns, in trainable-list order.
std::vector<size_t> OwnedIndices(const ShardedAdamW& opt);
// Calls fn on the view of every owned tensor, in trainable-list order.
void ForEachOwned(ShardedAdamW& opt, const std::function<void(OwnedTensor&)>& fn);
// The per-step hooks on every owned tensor, for the ShardedAdamW update callbacks.
ShardedAdamW::TensorUpdateFns PerTensorHooks(ShardedAdamW& opt, TrainHooks& hooks);
// A full-shape tensor of trainable tensor i on every rank (e.g. its final mask): `part` computes
// the owner's part of it from the owner's view (uint8 or any dtype Broadcast supports); the rest
// receive it. Collective: every rank calls it for the same i.
torch::Tensor GatherFromOwners(ShardedAdamW& opt, Communicator& comm, size_t i,
                               torch::ScalarType dtype,
                               const std::function<torch::Tensor(const OwnedTensor&)>& part);

}  // namespace ps

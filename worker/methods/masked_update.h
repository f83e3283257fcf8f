// Masked gradient update (the 2:4 proximal-operator paper, Kübler et al. 2025): after any method
// has chosen the masks, train the kept weights with the masks fixed. Pruned weights are zeroed
// once and stay exactly zero: their gradients are masked to zero before they reach .grad, and
// ApplyMasks() (call it after every optimizer step, on the master copy too) re-zeros them in case
// an optimizer moves a weight whose gradient is zero (weight decay, momentum from earlier runs).
// The engine drives the loop (optimizer, learning rate); this only installs and enforces the mask.
#pragma once

#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "worker/methods/train_hooks.h"
#include "worker/models/llama_model.h"

namespace ps {

class MaskedUpdate {
 public:
  // `masks`: bool [out, in] by HF module name; every name must be one of `targets` (targets with
  // no mask are left alone). Zeroes the pruned weights, makes the masked weights require grad
  // (whatever the caller froze before) and installs the gradient hooks.
  MaskedUpdate(const std::vector<std::shared_ptr<Linear>>& targets,
               const std::map<std::string, torch::Tensor>& masks);
  ~MaskedUpdate();  // removes the gradient hooks (weights keep their values)
  MaskedUpdate(const MaskedUpdate&) = delete;
  MaskedUpdate& operator=(const MaskedUpdate&) = delete;

  // The weights to train: the masked targets' weights, by parameter name ("<module>.weight").
  std::vector<std::pair<std::string, torch::Tensor>> Parameters() const;

  // Re-zeros every pruned weight in place (no autograd record).
  void ApplyMasks();
  // Zeros the pruned entries of another copy of weight `param_name` (e.g. an fp32 master weight),
  // or of a copy of some of its rows.
  void ApplyMaskTo(const std::string& param_name, torch::Tensor& t, RowRange rows = {}) const;
  // Whether a parameter name ("<module>.weight") is masked here.
  bool Has(const std::string& param_name) const;

 private:
  struct Entry {
    std::shared_ptr<Linear> linear;
    torch::Tensor keep;  // bool, on the weight's device
    unsigned hook = 0;
  };
  std::vector<Entry> entries_;
};

// The masked update as hooks of the engine's training step, over MaskedUpdate::Parameters():
// after AdamW, the pruned entries of each updated master are zeroed again.
class MaskedUpdateHooks : public TrainHooks {
 public:
  explicit MaskedUpdateHooks(MaskedUpdate& mu) : mu_(mu) {}
  void AfterUpdate(OwnedTensor& t) override;

 private:
  MaskedUpdate& mu_;
};

}  // namespace ps

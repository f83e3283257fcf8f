#include "worker/methods/masked_update.h"

#include "common/error.h"
#include "worker/methods/nm_mask.h"

namespace ps {

MaskedUpdate::MaskedUpdate(const std::vector<std::shared_ptr<Linear>>& targets,
                           const std::map<std::string, torch::Tensor>& masks) {
  size_t matched = 0;
  for (const auto& lin : targets) {
    auto it = masks.find(lin->path());
    if (it == masks.end()) continue;
    ++matched;
    if (it->second.sizes() != lin->weight.sizes()) {
      throw Error("masked update: mask for " + lin->path() + " has shape " +
                  c10::str(it->second.sizes()) + ", weight is " + c10::str(lin->weight.sizes()));
    }
    Entry e;
    e.linear = lin;
    e.keep = it->second.to(lin->weight.device(), torch::kBool);
    entries_.push_back(e);
  }
  if (matched != masks.size()) {
    for (const auto& [name, m] : masks) {
      bool found = false;
      for (const auto& e : entries_) found = found || e.linear->path() == name;
      if (!found) throw Error("masked update: mask for unknown linear '" + name + "'");
    }
  }
  ApplyMasks();
  for (auto& e : entries_) {
    e.linear->weight.set_requires_grad(true);  // these are the weights to train (a hook needs it)
    auto keep = e.keep;
    e.hook = e.linear->weight.register_hook(
        [keep](const torch::Tensor& g) { return torch::where(keep, g, torch::zeros_like(g)); });
  }
}

MaskedUpdate::~MaskedUpdate() {
  for (auto& e : entries_) e.linear->weight.remove_hook(e.hook);
}

std::vector<std::pair<std::string, torch::Tensor>> MaskedUpdate::Parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& e : entries_) out.emplace_back(e.linear->path() + ".weight", e.linear->weight);
  return out;
}

void MaskedUpdate::ApplyMasks() {
  torch::NoGradGuard no_grad;
  for (auto& e : entries_) e.linear->weight.masked_fill_(e.keep.logical_not(), 0);
}

bool MaskedUpdate::Has(const std::string& param_name) const {
  for (const auto& e : entries_) {
    if (e.linear->path() + ".weight" == param_name) return true;
  }
  return false;
}

void MaskedUpdate::ApplyMaskTo(const std::string& param_name, torch::Tensor& t,
                               RowRange rows) const {
  for (const auto& e : entries_) {
    if (e.linear->path() + ".weight" != param_name) continue;
    const torch::Tensor keep = rows.whole() ? e.keep : e.keep.narrow(0, rows.begin, rows.count);
    if (t.sizes() != keep.sizes()) {
      throw Error("masked update: " + param_name + " copy has shape " + c10::str(t.sizes()));
    }
    torch::NoGradGuard no_grad;
    t.masked_fill_(keep.to(t.device()).logical_not(), 0);
    return;
  }
  throw Error("masked update: no mask for parameter '" + param_name + "'");
}

void MaskedUpdateHooks::AfterUpdate(OwnedTensor& t) { mu_.ApplyMaskTo(t.name, t.master, t.rows); }

}  // namespace ps

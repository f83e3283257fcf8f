#include "worker/sparse/sparse_model.h"

#include <c10/cuda/CUDACachingAllocator.h>

#include "common/error.h"

namespace ps::sparse {

torch::Tensor Sparse24Op::Forward(const torch::Tensor& x) {
  const int64_t k = lin_->in_features();
  auto sizes = x.sizes().vec();
  const torch::Tensor y = lin_->Forward(x.reshape({-1, k}), path_);
  sizes.back() = lin_->out_features();
  return y.view(sizes);
}

SparsifyReport SparsifyModel(LlamaForCausalLM& model, const SparsifyOptions& options) {
  SparsifyReport report;
  const bool cslt = options.keep_cusparselt && Sparse24Linear::HasCusparselt();
  if (!options.keep_native && !cslt)
    throw Error("SparsifyModel: no 2:4 form to keep (this build has no cuSPARSELt)");
  torch::NoGradGuard no_grad;
  for (const auto& l : model.TargetLinears()) {
    if (l->op()) continue;  // already replaced
    const torch::Tensor& w = l->weight;
    const int64_t n = w.size(0), k = w.size(1);
    std::string why;
    if (!w.is_cuda()) why = "not on the GPU";
    if (w.scalar_type() != torch::kBFloat16 && w.scalar_type() != torch::kFloat16)
      why = "dtype is not bf16/fp16";
    if (k % 16 != 0) why = "in_features " + std::to_string(k) + " is not a multiple of 16";
    if (cslt && n % 8 != 0) why = "out_features " + std::to_string(n) + " is not a multiple of 8";
    if (why.empty()) {
      // Groups of 4 with more than two nonzeros (-0.0 is a zero) mean the target is not 2:4.
      const auto bits = w.reshape({n, k / 4, 4}).ne(0).sum(-1);
      if (bits.gt(2).any().item<bool>()) why = "not 2:4 sparse";
    }
    if (!why.empty()) {
      report.skipped.push_back(l->path() + ": " + why);
      continue;
    }
    std::unique_ptr<Sparse24Linear> lin;
    try {
      lin = std::make_unique<Sparse24Linear>(w, options.keep_native, cslt);
    } catch (const Error& e) {
      if (!cslt || !options.keep_native) throw;
      // cuSPARSELt has minimum sizes of its own; the native form has none beyond K % 16.
      lin = std::make_unique<Sparse24Linear>(w, true, false);
      report.notes.push_back(l->path() + ": native form only (" + e.what() + ")");
    }
    report.dense_weight_bytes += w.nbytes();
    report.native_bytes += lin->NativeBytes();
    report.cusparselt_bytes += lin->CusparseltBytes();
    report.shared_values += lin->SharesValues() ? 1 : 0;
    ++report.linears;
    l->set_op(std::make_shared<Sparse24Op>(std::move(lin)));
    if (options.release_dense) l->ReleaseWeight();
  }
  // Give the released dense blocks and packing temporaries back to the device, so what remains
  // reserved is what the sparse model uses.
  c10::cuda::CUDACachingAllocator::emptyCache();
  return report;
}

void SetSparsePath(LlamaForCausalLM& model, Sparse24Linear::Path path) {
  for (const auto& l : model.TargetLinears())
    if (auto* op = dynamic_cast<Sparse24Op*>(l->op().get())) op->set_path(path);
}

}  // namespace ps::sparse

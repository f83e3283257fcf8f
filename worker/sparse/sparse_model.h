// 2:4 inference for a whole Llama-family model: every pruning target (q/k/v/o/gate/up/down) that
// is 2:4 sparse gets a Sparse24Linear as its LinearOp (worker/models' hook), and the dense
// weight is released, so the GPU holds only the packed forms (docs/sparse-inference.md).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "worker/models/llama_model.h"
#include "worker/sparse/sparse24_linear.h"

namespace ps::sparse {

// Runs a Linear through a Sparse24Linear: x [.., K] is flattened to [M, K], the path is chosen
// for M (or forced), and the result reshaped back.
class Sparse24Op : public LinearOp {
 public:
  explicit Sparse24Op(std::unique_ptr<Sparse24Linear> lin) : lin_(std::move(lin)) {}
  torch::Tensor Forward(const torch::Tensor& x) override;
  Sparse24Linear& linear() { return *lin_; }
  // kAuto by default; anything else forces that path for every M.
  void set_path(Sparse24Linear::Path p) { path_ = p; }

 private:
  std::unique_ptr<Sparse24Linear> lin_;
  Sparse24Linear::Path path_ = Sparse24Linear::Path::kAuto;
};

struct SparsifyOptions {
  bool keep_native = true;      // for the decode kernels (and prefill through kUnpackDense)
  bool keep_cusparselt = true;  // for prefill; ignored (false) in builds without cuSPARSELt
  bool release_dense = true;    // free each dense weight once its packed forms exist
};

struct SparsifyReport {
  int64_t linears = 0;             // replaced
  int64_t dense_weight_bytes = 0;  // of the replaced linears
  int64_t native_bytes = 0, cusparselt_bytes = 0;
  int64_t shared_values = 0;         // linears whose native form reuses cuSPARSELt's values
  std::vector<std::string> skipped;  // "name: reason" for targets left dense
  std::vector<std::string> notes;    // "name: ..." for targets kept in the native form only
};

// Replaces every 2:4-sparse target of `model` (on the GPU, bf16/fp16) by a Sparse24Op. Targets
// that are not 2:4 sparse or whose shape the kernels cannot take stay dense and are listed; one
// that cuSPARSELt refuses keeps only the native form (prefill through kUnpackDense), noted.
SparsifyReport SparsifyModel(LlamaForCausalLM& model, const SparsifyOptions& options = {});

// Forces (or, with kAuto, restores) the path of every Sparse24Op in the model.
void SetSparsePath(LlamaForCausalLM& model, Sparse24Linear::Path path);

}  // namespace ps::sparse

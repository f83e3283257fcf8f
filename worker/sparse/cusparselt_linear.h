// y = x Wᵀ through cuSPARSELt directly, for a 2:4-sparse W [N, K] (bf16 or fp16, on the GPU).
//
// The weight is compressed once (cusparseLtSpMMACompress2 on its structured descriptor, so the
// compressed form does not depend on any plan). Each distinct row count M (rounded up to a
// multiple of 8, cuSPARSELt's minimum for 16-bit dense operands) gets its matmul descriptor and
// plan the first time it is seen; later calls reuse the plan. The plan's algorithm is chosen once
// per process for each (dtype, N, K, M) and shared by all layers of that shape: by default
// cusparseLtMatmulSearch's pick timed against every algorithm id with split-K 1, the fastest kept
// (bf16), or those ids alone (fp16, whose library search crashes in cuSPARSELt 0.8.1);
// PS_CUSPARSELT_SEARCH=0|manual|library|library-only and PS_CUSPARSELT_ALG=<id> override it
// (docs/sparse-inference.md). Each search writes one JSON line to stderr. Layouts, as PyTorch's
// own _cslt_sparse_mm uses them:
//   A = W        structured, row-major [N, K], op N
//   B = x        dense, row-major [M, K], op T        (so op(B) = xᵀ [K, M])
//   C = D = y    dense, column-major [N, M], ld N     (= y row-major [M, N])
// Built only when CMake finds cusparseLt (PS_WITH_CUSPARSELT).
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <map>
#include <memory>

namespace ps::sparse {

class CusparseLtLinear {
 public:
  // `w` is CUDA, contiguous [N, K], 2:4 sparse along K (not checked here; Sparse24Linear does).
  explicit CusparseLtLinear(const torch::Tensor& w);
  ~CusparseLtLinear();
  CusparseLtLinear(const CusparseLtLinear&) = delete;
  CusparseLtLinear& operator=(const CusparseLtLinear&) = delete;

  // x [M, K] (any M >= 1) -> y [M, N], same dtype, on the current stream.
  torch::Tensor Forward(const torch::Tensor& x);
  // Bytes of the compressed weight (values + metadata) the GPU keeps.
  size_t CompressedBytes() const;
  // The compressed buffer itself (uint8, CUDA). Its layout is cuSPARSELt's own; Sparse24Linear
  // only checks whether its first N*K/2 elements are the kept values in native order.
  const torch::Tensor& Compressed() const;
  // Whether the plan for m rows runs a searched (or PS_CUSPARSELT_ALG-pinned) algorithm (false:
  // the default algorithm, with PS_CUSPARSELT_SEARCH=0 or when no candidate ran; or no plan yet).
  bool Searched(int64_t m) const;
  int64_t out_features() const;
  int64_t in_features() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace ps::sparse

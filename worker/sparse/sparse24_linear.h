// A 2:4 linear layer y = x Wᵀ on the GPU (docs/sparse-inference.md). It keeps the weight in the
// form(s) asked for: the native packed layout for our decode kernel (M <= 16) and/or the
// cuSPARSELt compressed form (any M, built with cuSPARSELt only). Forward picks the decode kernel
// for M <= kDecodeAutoMaxM (or whenever cuSPARSELt is absent) and cuSPARSELt otherwise.
#pragma once

#include <torch/types.h>

#include <memory>

#include "worker/sparse/native_pack.h"

namespace ps::sparse {

class CusparseLtLinear;

class Sparse24Linear {
 public:
  enum class Path { kAuto, kDecode, kCusparselt };

  // `w`: [N, K] bf16 or fp16, 2:4 sparse along K (ps::Error otherwise), any device; the packed
  // forms live on the current CUDA device.
  Sparse24Linear(const torch::Tensor& w, bool keep_native, bool keep_cusparselt);
  ~Sparse24Linear();
  Sparse24Linear(Sparse24Linear&&) noexcept;
  Sparse24Linear& operator=(Sparse24Linear&&) noexcept;

  // x [M, K] CUDA, the weight's dtype -> y [M, N].
  torch::Tensor Forward(const torch::Tensor& x, Path path = Path::kAuto);
  // GPU bytes of each kept form (0 when not kept).
  int64_t NativeBytes() const;
  int64_t CusparseltBytes() const;
  // Whether cuSPARSELt's plan for m rows was chosen by its algorithm search.
  bool CusparseltSearched(int64_t m) const;
  int64_t out_features() const { return n_; }
  int64_t in_features() const { return k_; }
  static bool HasCusparselt();

 private:
  torch::Tensor Decode(const torch::Tensor& x);
  int64_t n_ = 0, k_ = 0;
  torch::ScalarType dtype_ = torch::kBFloat16;
  NativePacked native_;  // CUDA tensors, or undefined
  std::unique_ptr<CusparseLtLinear> cslt_;
};

}  // namespace ps::sparse

// A 2:4 linear layer y = x Wᵀ on the GPU (docs/sparse-inference.md). It keeps the weight in the
// form(s) asked for: the native packed layout for our decode kernels (M <= 32), with it the mma.sp
// layout for the sparse tensor-core kernel (mma_sp_layout.h, built once here), and/or the
// cuSPARSELt compressed form (any M, built with cuSPARSELt only). When both are kept and
// cuSPARSELt's compressed buffer starts with the kept values in native order (checked on the
// GPU at construction, never assumed), the native form reuses them and adds only its metadata.
#pragma once

#include <torch/types.h>

#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "worker/sparse/native_pack.h"

namespace ps::sparse {

class CusparseLtLinear;

class Sparse24Linear {
 public:
  enum class Path {
    kAuto,        // the fastest kept path for M (kAutoGemvMaxM, kAutoMmaMaxM, then cuSPARSELt)
    kDecode,      // CUDA-core decode kernel (native form), M split into launches of 16
    kDecodeMma,   // tensor-core decode kernel (native form), M split into launches of 32
    kSparseMma,   // sparse tensor-core kernel (mma.sp layout), M split into launches of 32
    kCusparselt,  // cuSPARSELt
    kUnpackDense  // native form unpacked into a dense scratch weight, then dense cuBLAS
  };

  // `w`: [N, K] bf16 or fp16, 2:4 sparse along K (ps::Error otherwise), any device; the packed
  // forms live on the current CUDA device. `w` itself is not kept.
  Sparse24Linear(const torch::Tensor& w, bool keep_native, bool keep_cusparselt);
  ~Sparse24Linear();
  Sparse24Linear(Sparse24Linear&&) noexcept;
  Sparse24Linear& operator=(Sparse24Linear&&) noexcept;

  // x [M, K] CUDA, the weight's dtype -> y [M, N].
  torch::Tensor Forward(const torch::Tensor& x, Path path = Path::kAuto);
  // The path kAuto takes for m rows with the forms kept.
  Path AutoPath(int64_t m) const;
  // GPU bytes of each kept form (0 when not kept; the native form counts only its metadata when
  // it shares cuSPARSELt's values), and of everything this layer holds.
  int64_t NativeBytes() const;
  int64_t CusparseltBytes() const;
  // The mma.sp layout (values and metadata reordered for the sparse tensor cores; kept with the
  // native form).
  int64_t SparseMmaBytes() const;
  int64_t GpuBytes() const { return NativeBytes() + SparseMmaBytes() + CusparseltBytes(); }
  // Whether the native form reads its values from cuSPARSELt's compressed buffer.
  bool SharesValues() const { return shared_values_; }
  bool HasNative() const { return native_.values.defined(); }
  bool HasCusparseltForm() const { return cslt_ != nullptr; }
  // Set when cuSPARSELt refused a shape under kAuto (its minimum sizes): kAuto then uses the
  // native form for every M. Empty otherwise.
  const std::string& CusparseltRefusal() const { return cslt_refusal_; }
  // Whether cuSPARSELt's plan for m rows was chosen by its algorithm search.
  bool CusparseltSearched(int64_t m) const;
  // The sparse tensor-core kernel with one variant (0 .. kSpmmaVariants - 1) for every launch,
  // for checks and benches; kSparseMma times the variants on its first call per shape and M and
  // keeps the fastest. A variant that cannot run m rows of this shape on this GPU
  // (SparseMmaVariantRuns false) is an error.
  torch::Tensor SparseMmaVariant(const torch::Tensor& x, int variant);
  bool SparseMmaVariantRuns(int64_t m, int variant) const;
  int64_t out_features() const { return n_; }
  int64_t in_features() const { return k_; }
  static bool HasCusparselt();

 private:
  torch::Tensor Decode(const torch::Tensor& x, bool mma);
  torch::Tensor SparseMma(const torch::Tensor& x);
  int TimeSpmmaVariants(const torch::Tensor& x);
  static std::map<std::tuple<int, int64_t, int64_t, int64_t>, int>& SpmmaVariants();
  void BuildSparseMmaLayout();
  torch::Tensor UnpackDense(const torch::Tensor& x);
  // The timed choice for 1 <= M <= kMmaMaxM (kept per process and shape).
  Path TimeSmallM(const torch::Tensor& x);
  std::tuple<int, int64_t, int64_t, int64_t> ChoiceKey(int64_t m) const;
  static std::map<std::tuple<int, int64_t, int64_t, int64_t>, Path>& TimedChoices();
  int64_t n_ = 0, k_ = 0;
  torch::ScalarType dtype_ = torch::kBFloat16;
  bool shared_values_ = false;
  std::string cslt_refusal_;
  NativePacked native_;  // CUDA tensors, or undefined
  // The mma.sp layout (int32 words, CUDA) and the split-K arrival counters of its kernel (one per
  // row block of the variant with the most, zero between launches); undefined without the
  // native form.
  torch::Tensor sp_values_, sp_meta_, sp_counters_;
  std::unique_ptr<CusparseLtLinear> cslt_;
};

// Automatic path thresholds (measured on the H100, docs/sparse-inference.md): the CUDA-core
// kernel up to kAutoGemvMaxM rows, the tensor-core kernel up to kAutoMmaMaxM, cuSPARSELt above
// (or the unpacked dense path when only the native form is kept). At M = 2 the tensor-core
// kernel was already faster (1.18-1.23x over dense vs 0.96-1.14x for the CUDA-core one).
// From 1 up to kMmaMaxM (32) rows the CUDA-core kernel (up to kDecodeMaxM), the tensor-core
// kernel, the sparse tensor-core kernel and the prefill path are timed against each other on the
// first call of each shape and M (TimeSmallM): end to end, the tensor-core kernel alone was no
// faster than dense at M 4-16. The thresholds apply before that first call.
inline constexpr int64_t kAutoGemvMaxM = 1;
inline constexpr int64_t kAutoMmaMaxM = 16;

const char* PathName(Sparse24Linear::Path p);

}  // namespace ps::sparse

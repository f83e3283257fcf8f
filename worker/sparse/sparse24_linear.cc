#include "worker/sparse/sparse24_linear.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <string>

#include "common/error.h"
#include "worker/sparse/sparse24_gemv.h"
#ifdef PS_WITH_CUSPARSELT
#include "worker/sparse/cusparselt_linear.h"
#endif

namespace ps::sparse {

#ifndef PS_WITH_CUSPARSELT
// Without cuSPARSELt the class is only declared; nothing ever creates one.
class CusparseLtLinear {};
#endif

Sparse24Linear::Sparse24Linear(const torch::Tensor& w, bool keep_native, bool keep_cusparselt) {
  if (w.dim() != 2) throw Error("Sparse24Linear: the weight must be 2-D");
  dtype_ = w.scalar_type();
  if (dtype_ != torch::kBFloat16 && dtype_ != torch::kFloat16)
    throw Error("Sparse24Linear: only bf16 and fp16 weights are supported");
  n_ = w.size(0);
  k_ = w.size(1);
  const auto dev = torch::Device(torch::kCUDA, c10::cuda::current_device());
  // PackNative checks 2:4 sparsity (ps::Error naming the group otherwise) for both forms.
  NativePacked host = PackNative(w);
  if (keep_native) native_ = {host.values.to(dev), host.meta.to(dev)};
  if (keep_cusparselt) {
#ifdef PS_WITH_CUSPARSELT
    cslt_ = std::make_unique<CusparseLtLinear>(w.to(dev).contiguous());
#else
    throw Error("Sparse24Linear: this build has no cuSPARSELt (configure with it found)");
#endif
  }
}

Sparse24Linear::~Sparse24Linear() = default;
Sparse24Linear::Sparse24Linear(Sparse24Linear&&) noexcept = default;
Sparse24Linear& Sparse24Linear::operator=(Sparse24Linear&&) noexcept = default;

bool Sparse24Linear::HasCusparselt() {
#ifdef PS_WITH_CUSPARSELT
  return true;
#else
  return false;
#endif
}

int64_t Sparse24Linear::NativeBytes() const {
  return native_.values.defined() ? native_.bytes() : 0;
}

int64_t Sparse24Linear::CusparseltBytes() const {
#ifdef PS_WITH_CUSPARSELT
  return cslt_ ? static_cast<int64_t>(cslt_->CompressedBytes()) : 0;
#else
  return 0;
#endif
}

bool Sparse24Linear::CusparseltSearched(int64_t m) const {
#ifdef PS_WITH_CUSPARSELT
  return cslt_ && cslt_->Searched(m);
#else
  (void)m;
  return false;
#endif
}

torch::Tensor Sparse24Linear::Decode(const torch::Tensor& x) {
  const torch::Tensor xc = x.contiguous();
  const int64_t m = xc.size(0);
  auto y = torch::empty({m, n_}, xc.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const Elem elem = dtype_ == torch::kBFloat16 ? Elem::kBF16 : Elem::kF16;
  // The kernel takes up to kDecodeMaxM rows at a time.
  for (int64_t r = 0; r < m; r += kDecodeMaxM) {
    const int64_t rows = std::min<int64_t>(kDecodeMaxM, m - r);
    const cudaError_t err =
        Sparse24Gemv(elem, xc[r].data_ptr(), native_.values.data_ptr(),
                     native_.meta.data_ptr<uint8_t>(), y[r].data_ptr(), static_cast<int>(rows),
                     static_cast<int>(n_), static_cast<int>(k_), stream);
    if (err != cudaSuccess)
      throw Error(std::string("2:4 decode kernel: ") + cudaGetErrorString(err) + " (M " +
                  std::to_string(rows) + ", N " + std::to_string(n_) + ", K " + std::to_string(k_) +
                  ")");
  }
  return y;
}

torch::Tensor Sparse24Linear::Forward(const torch::Tensor& x, Path path) {
  if (!x.is_cuda() || x.dim() != 2 || x.size(1) != k_ || x.scalar_type() != dtype_)
    throw Error("Sparse24Linear: input must be CUDA [M, " + std::to_string(k_) +
                "] of the weight's dtype");
  if (path == Path::kAuto)
    path = (native_.values.defined() && x.size(0) <= kDecodeAutoMaxM) || !cslt_ ? Path::kDecode
                                                                                : Path::kCusparselt;
  if (path == Path::kDecode) {
    if (!native_.values.defined()) throw Error("Sparse24Linear: the native form was not kept");
    return Decode(x);
  }
#ifdef PS_WITH_CUSPARSELT
  if (cslt_) return cslt_->Forward(x);
#endif
  throw Error("Sparse24Linear: the cuSPARSELt form was not kept (or this build has none)");
}

}  // namespace ps::sparse

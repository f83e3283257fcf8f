// The 16-bit element types of the GPU kernels (bf16, fp16) and, in device code, their exact
// conversion to fp32 and round-to-nearest-even conversion from it: one definition for the 2:4
// kernels (sparse24_*.cu) and psserve's decode attention (worker/serve/decode_attention.cu).
// Plain C++ outside nvcc, so host code can name the types.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace ps::sparse {

enum class Elem { kBF16, kF16 };

#if defined(__CUDACC__)
template <Elem E>
__device__ __forceinline__ float ToFloat(uint32_t bits16) {
  if constexpr (E == Elem::kBF16) {
    return __uint_as_float(bits16 << 16);
  } else {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(bits16)));
  }
}

template <Elem E>
__device__ __forceinline__ uint16_t FromFloat(float f) {
  if constexpr (E == Elem::kBF16) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  } else {
    return __half_as_ushort(__float2half_rn(f));
  }
}
#endif

}  // namespace ps::sparse

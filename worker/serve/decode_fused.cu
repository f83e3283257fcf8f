// Fused elementwise kernels of the decode step (see decode_fused.h for what each computes).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "worker/serve/decode_fused.h"

namespace ps::serve {
namespace {

using sparse::FromFloat;
using sparse::ToFloat;

// Round a product or sum to the 16-bit type and back: one LibTorch elementwise op's result.
template <Elem E>
__device__ __forceinline__ float Round(float f) {
  return ToFloat<E>(FromFloat<E>(f));
}

// VW consecutive 16-bit values (VW = 8: one 16-byte access; the caller checks the alignment).
template <int VW>
__device__ __forceinline__ void Load(const uint16_t* p, uint16_t (&v)[VW]) {
  if constexpr (VW == 8) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      v[2 * k] = static_cast<uint16_t>(w[k] & 0xffffu);
      v[2 * k + 1] = static_cast<uint16_t>(w[k] >> 16);
    }
  } else {
#pragma unroll
    for (int k = 0; k < VW; ++k) v[k] = p[k];
  }
}

template <int VW>
__device__ __forceinline__ void Store(uint16_t* p, const uint16_t (&v)[VW]) {
  if constexpr (VW == 8) {
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) w[k] = v[2 * k] | (static_cast<uint32_t>(v[2 * k + 1]) << 16);
    *reinterpret_cast<uint4*>(p) = make_uint4(w[0], w[1], w[2], w[3]);
  } else {
#pragma unroll
    for (int k = 0; k < VW; ++k) p[k] = v[k];
  }
}

constexpr int kNormThreads = 256;

// One block per row. Each thread reads back only what it wrote itself, so h_out may be h.
template <Elem E, int VW>
__global__ void __launch_bounds__(kNormThreads)
    AddRmsNormKernel(const uint16_t* h, const uint16_t* delta, uint16_t* h_out,
                     const uint16_t* __restrict__ w, uint16_t* __restrict__ y, int hidden,
                     float eps) {
  const size_t base = static_cast<size_t>(blockIdx.x) * hidden;
  const uint16_t* s_row = (delta ? h_out : h) + base;
  float ss = 0.f;
  for (int i = threadIdx.x * VW; i < hidden; i += kNormThreads * VW) {
    uint16_t v[VW];
    Load<VW>(h + base + i, v);
    if (delta) {
      uint16_t d[VW];
      Load<VW>(delta + base + i, d);
#pragma unroll
      for (int k = 0; k < VW; ++k) v[k] = FromFloat<E>(ToFloat<E>(v[k]) + ToFloat<E>(d[k]));
      Store<VW>(h_out + base + i, v);
    }
#pragma unroll
    for (int k = 0; k < VW; ++k) {
      const float f = ToFloat<E>(v[k]);
      ss += f * f;
    }
  }
  __shared__ float partial[kNormThreads / 32];
  __shared__ float total;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.f;
    for (int i = 0; i < kNormThreads / 32; ++i) t += partial[i];
    total = t;
  }
  __syncthreads();
  // As LibTorch: mean = sum * (1 / hidden), then rsqrt(mean + eps), all in fp32.
  const float inv = rsqrtf(total * (1.f / static_cast<float>(hidden)) + eps);
  for (int i = threadIdx.x * VW; i < hidden; i += kNormThreads * VW) {
    uint16_t v[VW], g[VW], o[VW];
    Load<VW>(s_row + i, v);
    Load<VW>(w + i, g);
#pragma unroll
    for (int k = 0; k < VW; ++k)
      o[k] = FromFloat<E>(ToFloat<E>(g[k]) * Round<E>(ToFloat<E>(v[k]) * inv));
    Store<VW>(y + base + i, o);
  }
}

// Block (row i, head): thread j rotates the pair (j, j + head_dim / 2). Heads 0..q_heads-1 are
// q's (to q_out); the rest are k's (to the pool), and their threads also copy v's head.
template <Elem E>
__global__ void RopeAndCacheKernel(RopeCacheArgs a) {
  const int i = blockIdx.x, head = blockIdx.y, j = threadIdx.x, half = a.head_dim / 2;
  const int64_t p = a.pos[i];
  const auto* cos = static_cast<const uint16_t*>(a.cos) + p * a.head_dim;
  const auto* sin = static_cast<const uint16_t*>(a.sin) + p * a.head_dim;
  const uint16_t* x;
  uint16_t* out;
  if (head < a.q_heads) {
    x = static_cast<const uint16_t*>(a.q_in) + i * a.q_row_stride +
        static_cast<int64_t>(head) * a.head_dim;
    out =
        static_cast<uint16_t*>(a.q_out) + (static_cast<int64_t>(i) * a.q_heads + head) * a.head_dim;
  } else {
    const int kh = head - a.q_heads;
    const int64_t at = a.slot[i] * a.slot_stride + kh * a.head_stride + p * a.head_dim;
    x = static_cast<const uint16_t*>(a.k_in) + i * a.k_row_stride +
        static_cast<int64_t>(kh) * a.head_dim;
    out = static_cast<uint16_t*>(a.k_pool) + at;
    const auto* v = static_cast<const uint16_t*>(a.v_in) + i * a.v_row_stride +
                    static_cast<int64_t>(kh) * a.head_dim;
    auto* v_out = static_cast<uint16_t*>(a.v_pool) + at;
    v_out[j] = v[j];
    v_out[j + half] = v[j + half];
  }
  const float x1 = ToFloat<E>(x[j]), x2 = ToFloat<E>(x[j + half]);
  // x * cos + cat(-x2, x1) * sin, each product and the sum rounded (three LibTorch ops).
  out[j] = FromFloat<E>(Round<E>(x1 * ToFloat<E>(cos[j])) + Round<E>(-x2 * ToFloat<E>(sin[j])));
  out[j + half] = FromFloat<E>(Round<E>(x2 * ToFloat<E>(cos[j + half])) +
                               Round<E>(x1 * ToFloat<E>(sin[j + half])));
}

template <Elem E, int VW>
__global__ void SiluMulKernel(const uint16_t* __restrict__ gate, const uint16_t* __restrict__ up,
                              uint16_t* __restrict__ out, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x * VW;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * VW; i < n;
       i += stride) {
    uint16_t g[VW], u[VW], o[VW];
    Load<VW>(gate + i, g);
    Load<VW>(up + i, u);
#pragma unroll
    for (int k = 0; k < VW; ++k) {
      const float x = ToFloat<E>(g[k]);
      // LibTorch's silu: x / (1 + exp(-x)) in fp32 (expf, not the fast intrinsic).
      o[k] = FromFloat<E>(Round<E>(x / (1.f + expf(-x))) * ToFloat<E>(u[k]));
    }
    Store<VW>(out + i, o);
  }
}

bool Aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

template <Elem E>
cudaError_t LaunchAddRmsNorm(const void* h, const void* delta, void* h_out, const void* w, void* y,
                             int rows, int hidden, float eps, cudaStream_t stream) {
  const bool vec = hidden % 8 == 0 && Aligned16(h) && Aligned16(w) && Aligned16(y) &&
                   (!delta || (Aligned16(delta) && Aligned16(h_out)));
  auto* hp = static_cast<const uint16_t*>(h);
  auto* dp = static_cast<const uint16_t*>(delta);
  auto* op = static_cast<uint16_t*>(h_out);
  auto* wp = static_cast<const uint16_t*>(w);
  auto* yp = static_cast<uint16_t*>(y);
  if (vec)
    AddRmsNormKernel<E, 8><<<rows, kNormThreads, 0, stream>>>(hp, dp, op, wp, yp, hidden, eps);
  else
    AddRmsNormKernel<E, 1><<<rows, kNormThreads, 0, stream>>>(hp, dp, op, wp, yp, hidden, eps);
  return cudaGetLastError();
}

template <Elem E>
cudaError_t LaunchSiluMul(const void* gate, const void* up, void* out, int64_t n,
                          cudaStream_t stream) {
  const bool vec = n % 8 == 0 && Aligned16(gate) && Aligned16(up) && Aligned16(out);
  const int vw = vec ? 8 : 1, threads = 256;
  const int64_t blocks = std::min<int64_t>((n / vw + threads - 1) / threads, 4096);
  auto* g = static_cast<const uint16_t*>(gate);
  auto* u = static_cast<const uint16_t*>(up);
  auto* o = static_cast<uint16_t*>(out);
  if (vec)
    SiluMulKernel<E, 8><<<static_cast<int>(blocks), threads, 0, stream>>>(g, u, o, n);
  else
    SiluMulKernel<E, 1><<<static_cast<int>(blocks), threads, 0, stream>>>(g, u, o, n);
  return cudaGetLastError();
}

}  // namespace

cudaError_t AddRmsNorm(Elem e, const void* h, const void* delta, void* h_out, const void* w,
                       void* y, int rows, int hidden, float eps, cudaStream_t stream) {
  if (rows < 1 || hidden < 1 || !h || !w || !y || (delta && !h_out)) return cudaErrorInvalidValue;
  return e == Elem::kBF16
             ? LaunchAddRmsNorm<Elem::kBF16>(h, delta, h_out, w, y, rows, hidden, eps, stream)
             : LaunchAddRmsNorm<Elem::kF16>(h, delta, h_out, w, y, rows, hidden, eps, stream);
}

cudaError_t RopeAndCache(Elem e, const RopeCacheArgs& a, cudaStream_t stream) {
  if (a.n < 1 || a.q_heads < 1 || a.kv_heads < 1 || a.head_dim < 2 || a.head_dim % 2 != 0 ||
      a.head_dim > 2048 || !a.q_in || !a.k_in || !a.v_in || !a.cos || !a.sin || !a.pos || !a.slot ||
      !a.q_out || !a.k_pool || !a.v_pool)
    return cudaErrorInvalidValue;
  const dim3 grid(a.n, a.q_heads + a.kv_heads);
  if (e == Elem::kBF16)
    RopeAndCacheKernel<Elem::kBF16><<<grid, a.head_dim / 2, 0, stream>>>(a);
  else
    RopeAndCacheKernel<Elem::kF16><<<grid, a.head_dim / 2, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t SiluMul(Elem e, const void* gate, const void* up, void* out, int64_t n,
                    cudaStream_t stream) {
  if (n < 1 || !gate || !up || !out) return cudaErrorInvalidValue;
  return e == Elem::kBF16 ? LaunchSiluMul<Elem::kBF16>(gate, up, out, n, stream)
                          : LaunchSiluMul<Elem::kF16>(gate, up, out, n, stream);
}

}  // namespace ps::serve

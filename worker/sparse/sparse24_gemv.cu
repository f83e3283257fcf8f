// The decode kernel (see sparse24_gemv.h). Each warp owns kRows output rows; its lanes stride
// over K in chunks of 16 dense columns (4 groups): one 16-byte load of 8 kept values and one
// 2-byte load of their 4 nibbles per row. The 16 x values of the chunk are read once per token
// and shared by the warp's rows; each kept value picks its x by its 2-bit position with selects
// (no dynamic register indexing). fp32 accumulation, warp-shuffle reduction, one rounding at
// the end. Two chunks are in flight per lane to keep enough bytes moving.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "worker/sparse/sparse24_gemv.h"

namespace ps::sparse {
namespace {

constexpr int kWarps = 8;  // warps per block
constexpr int kRows = 2;   // output rows per warp
// Chunks loaded before computing (4 at M <= 2 measured no better than 2 on the H100).
template <int MB>
constexpr int kUnroll = 2;

// xs[i] for a 2-bit i, by selects.
__device__ __forceinline__ float Pick(const float* xs, unsigned i) {
  const float lo = (i & 1u) ? xs[1] : xs[0];
  const float hi = (i & 1u) ? xs[3] : xs[2];
  return (i & 2u) ? hi : lo;
}

template <Elem E, int MB>
__global__ void __launch_bounds__(kWarps * 32)
    Sparse24GemvKernel(const uint16_t* __restrict__ x, const uint16_t* __restrict__ values,
                       const uint8_t* __restrict__ meta, uint16_t* __restrict__ y, int M, int N,
                       int K) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int row0 = (blockIdx.x * kWarps + warp) * kRows;
  if (row0 >= N) return;
  const int chunks = K / 16;
  const size_t vrow = static_cast<size_t>(K) / 2;  // values per row
  const size_t mrow = static_cast<size_t>(K) / 8;  // metadata bytes per row

  float acc[kRows][MB];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < MB; ++m) acc[r][m] = 0.f;

  for (int c0 = lane; c0 < chunks; c0 += 32 * kUnroll<MB>) {
    uint4 v[kUnroll<MB>][kRows];
    uint32_t mt[kUnroll<MB>][kRows];
#pragma unroll
    for (int u = 0; u < kUnroll<MB>; ++u) {
      const int c = c0 + 32 * u;
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const int row = min(row0 + r, N - 1);  // a missing last row repeats a real one
        if (c < chunks) {
          v[u][r] = __ldg(reinterpret_cast<const uint4*>(values + row * vrow) + c);
          mt[u][r] = __ldg(reinterpret_cast<const uint16_t*>(meta + row * mrow) + c);
        } else {
          v[u][r] = make_uint4(0, 0, 0, 0);
          mt[u][r] = 0x4444;  // positions 0,1 of zero values: adds nothing
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll<MB>; ++u) {
      const int c = c0 + 32 * u;
      if (c >= chunks) break;
      // The kept values as floats and their positions, once per chunk (not per token).
      float vf[kRows][8];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        const uint32_t vw[4] = {v[u][r].x, v[u][r].y, v[u][r].z, v[u][r].w};
#pragma unroll
        for (int g = 0; g < 4; ++g) {
          vf[r][2 * g] = ToFloat<E>(vw[g] & 0xFFFFu);
          vf[r][2 * g + 1] = ToFloat<E>(vw[g] >> 16);
        }
      }
#pragma unroll
      for (int m = 0; m < MB; ++m) {
        if (m >= M) break;
        const uint4* xp = reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * K) + 2 * c;
        const uint4 xa = __ldg(xp), xb = __ldg(xp + 1);
        const uint32_t xw[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
        float xs[16];
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          xs[2 * i] = ToFloat<E>(xw[i] & 0xFFFFu);
          xs[2 * i + 1] = ToFloat<E>(xw[i] >> 16);
        }
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          float a = acc[r][m];
#pragma unroll
          for (int g = 0; g < 4; ++g) {
            const unsigned nib = (mt[u][r] >> (4 * g)) & 15u;
            a = fmaf(vf[r][2 * g], Pick(xs + 4 * g, nib & 3u), a);
            a = fmaf(vf[r][2 * g + 1], Pick(xs + 4 * g, nib >> 2), a);
          }
          acc[r][m] = a;
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int m = 0; m < MB; ++m)
#pragma unroll
      for (int off = 16; off > 0; off >>= 1)
        acc[r][m] += __shfl_xor_sync(0xffffffffu, acc[r][m], off);
  if (lane == 0) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      if (row0 + r >= N) break;
#pragma unroll
      for (int m = 0; m < MB; ++m)
        if (m < M) y[static_cast<size_t>(m) * N + row0 + r] = FromFloat<E>(acc[r][m]);
    }
  }
}

template <Elem E, int MB>
cudaError_t Launch(const void* x, const void* values, const uint8_t* meta, void* y, int M, int N,
                   int K, cudaStream_t stream) {
  const int rows_per_block = kWarps * kRows;
  const dim3 grid((N + rows_per_block - 1) / rows_per_block);
  Sparse24GemvKernel<E, MB><<<grid, kWarps * 32, 0, stream>>>(
      static_cast<const uint16_t*>(x), static_cast<const uint16_t*>(values), meta,
      static_cast<uint16_t*>(y), M, N, K);
  return cudaGetLastError();
}

template <Elem E>
cudaError_t Dispatch(const void* x, const void* values, const uint8_t* meta, void* y, int M, int N,
                     int K, cudaStream_t stream) {
  if (M <= 1) return Launch<E, 1>(x, values, meta, y, M, N, K, stream);
  if (M <= 2) return Launch<E, 2>(x, values, meta, y, M, N, K, stream);
  if (M <= 4) return Launch<E, 4>(x, values, meta, y, M, N, K, stream);
  if (M <= 8) return Launch<E, 8>(x, values, meta, y, M, N, K, stream);
  return Launch<E, 16>(x, values, meta, y, M, N, K, stream);
}

}  // namespace

cudaError_t Sparse24Gemv(Elem elem, const void* x, const void* values, const uint8_t* meta, void* y,
                         int M, int N, int K, cudaStream_t stream) {
  if (!DecodeArgsValid(x, values, meta, y, M, N, K)) return cudaErrorInvalidValue;
  return elem == Elem::kBF16 ? Dispatch<Elem::kBF16>(x, values, meta, y, M, N, K, stream)
                             : Dispatch<Elem::kF16>(x, values, meta, y, M, N, K, stream);
}

}  // namespace ps::sparse

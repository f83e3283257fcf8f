// Tensor-core decode kernel (see sparse24_gemv.h, Sparse24GemmSmallM) and the native -> dense
// unpacking kernel.
//
// Sparse24GemmSmallM: y[M, N] = x[M, K] · Wᵀ for M <= 32 with W in the native layout. The
// CUDA-core kernel (sparse24_gemv.cu) pays a select and an FMA per kept value per token, so it is
// compute-bound from M ≈ 3. Here each weight is decompressed once, in registers, into the A
// fragment of a dense mma.sync.m16n8k16 (bf16/fp16 in, fp32 accumulate), and the x rows are the B
// fragment (NT = 1..4 tiles of 8 tokens): the weights are read once for all M <= 32 tokens and
// the math runs on tensor cores.
//
// Work split: a block of kWarps warps owns 16 output rows; its warps split K in blocks of 64
// columns (warp w takes blocks w, w + kWarps, ...) and are summed through shared memory at the
// end. In a 64-column block, lane (g = lane / 4, t = lane % 4) loads, for rows g and g + 8, the 4
// groups of columns 16t .. 16t + 15: one 16-byte load of their 8 kept values and one 2-byte load
// of their 4 nibbles per row (64 contiguous bytes per row across the 4 lanes).
//
// The k order inside an mma is free as long as A and B agree. Step s (0..3) of a block feeds
// group s of each lane's 4 groups: the lane's mma k slots {2t, 2t+1} get the group's columns
// 0, 1 and slots {2t+8, 2t+9} its columns 2, 3 (m16n8k16 fragments: A a0a1 = (row g, k 2t..2t+1),
// a2a3 = (row g+8, same k), a4a5 = (row g, k 2t+8..2t+9), a6a7 = (row g+8, same k); B b0b1 =
// (k 2t..2t+1, n g), b2b3 = (k 2t+8..2t+9, n g); C c0c1 = (row g, n 2t..2t+1), c2c3 = (row g+8,
// same n)). Every k slot belongs to one t, and the lane of that t on both sides maps it to the
// same real column 64·block + 16t + 4s + {0,1,2,3}, so the product is the real x Wᵀ. The B
// fragment of token g at step s is then simply two 32-bit words of x: columns 4s, 4s+1 and
// 4s+2, 4s+3 of the lane's 16.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "worker/sparse/sparse24_gemv.h"

namespace ps::sparse {
namespace {

constexpr int kWarps = 8;   // warps per block, splitting K
constexpr int kUnroll = 2;  // 64-column blocks loaded before computing

template <Elem E>
__device__ __forceinline__ void Mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  if constexpr (E == Elem::kBF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// The dense group of 4 (16-bit patterns) from its kept pair `w` (slot 0 in the low half) and its
// nibble (slot 0's position in bits 0-1, slot 1's in bits 2-3), as two 32-bit words:
// lo = columns 0, 1 and hi = columns 2, 3 (lower column in the lower half).
__device__ __forceinline__ void Decompress(uint32_t w, uint32_t nib, uint32_t& lo, uint32_t& hi) {
  const uint32_t v0 = w & 0xFFFFu, v1 = w >> 16;
  const uint32_t p0 = nib & 3u, p1 = (nib >> 2) & 3u;
  auto at = [&](uint32_t c) { return (p0 == c ? v0 : 0u) | (p1 == c ? v1 : 0u); };
  lo = at(0) | (at(1) << 16);
  hi = at(2) | (at(3) << 16);
}

template <Elem E, int NT>
__global__ void __launch_bounds__(kWarps * 32)
    Sparse24MmaKernel(const uint16_t* __restrict__ x, const uint16_t* __restrict__ values,
                      const uint8_t* __restrict__ meta, uint16_t* __restrict__ y, int M, int N,
                      int K) {
  __shared__ float partial[kWarps][16][8 * NT];  // [warp][row][token]
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int tile = blockIdx.x * 16;
  const int row_a = min(tile + g, N - 1);  // missing last rows repeat a real one, never stored
  const int row_b = min(tile + g + 8, N - 1);
  const size_t vrow = static_cast<size_t>(K) / 2;  // values per row
  const size_t mrow = static_cast<size_t>(K) / 8;  // metadata bytes per row
  const int blocks = (K + 63) / 64;

  float acc[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[n][i] = 0.f;

  for (int kb0 = warp; kb0 < blocks; kb0 += kWarps * kUnroll) {
    uint4 va[kUnroll], vb[kUnroll], xv[kUnroll][NT][2];
    uint32_t ma[kUnroll], mb[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int col0 = (kb0 + kWarps * u) * 64 + 16 * t;  // the lane's 16 columns
      if (col0 < K) {                                     // K % 16 == 0: all 16 columns exist
        va[u] = __ldg(reinterpret_cast<const uint4*>(values + row_a * vrow + col0 / 2));
        vb[u] = __ldg(reinterpret_cast<const uint4*>(values + row_b * vrow + col0 / 2));
        ma[u] = __ldg(reinterpret_cast<const uint16_t*>(meta + row_a * mrow + col0 / 8));
        mb[u] = __ldg(reinterpret_cast<const uint16_t*>(meta + row_b * mrow + col0 / 8));
      } else {
        va[u] = vb[u] = make_uint4(0, 0, 0, 0);
        ma[u] = mb[u] = 0x4444;  // positions 0, 1 of zero values
      }
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        const int m = n * 8 + g;  // the token of this lane's B fragment
        if (col0 < K && m < M) {
          const uint4* xp = reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * K + col0);
          xv[u][n][0] = __ldg(xp);
          xv[u][n][1] = __ldg(xp + 1);
        } else {
          xv[u][n][0] = xv[u][n][1] = make_uint4(0, 0, 0, 0);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t wa[4] = {va[u].x, va[u].y, va[u].z, va[u].w};
      const uint32_t wb[4] = {vb[u].x, vb[u].y, vb[u].z, vb[u].w};
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        uint32_t a[4];
        Decompress(wa[s], ma[u] >> (4 * s), a[0], a[2]);  // row g: k 2t.. (a0a1), 2t+8.. (a4a5)
        Decompress(wb[s], mb[u] >> (4 * s), a[1], a[3]);  // row g+8: a2a3, a6a7
#pragma unroll
        for (int n = 0; n < NT; ++n) {
          const uint32_t xw[8] = {xv[u][n][0].x, xv[u][n][0].y, xv[u][n][0].z, xv[u][n][0].w,
                                  xv[u][n][1].x, xv[u][n][1].y, xv[u][n][1].z, xv[u][n][1].w};
          Mma<E>(acc[n], a, xw[2 * s], xw[2 * s + 1]);
        }
      }
    }
  }
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    partial[warp][g][n * 8 + 2 * t] = acc[n][0];
    partial[warp][g][n * 8 + 2 * t + 1] = acc[n][1];
    partial[warp][g + 8][n * 8 + 2 * t] = acc[n][2];
    partial[warp][g + 8][n * 8 + 2 * t + 1] = acc[n][3];
  }
  __syncthreads();
  // 256 threads: entry i is row i % 16 of token i / 16, summed over the warps (coalesced stores).
  for (int i = threadIdx.x; i < 16 * 8 * NT; i += kWarps * 32) {
    const int r = i & 15, m = i >> 4;
    if (m >= M || tile + r >= N) continue;
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) sum += partial[w][r][m];
    y[static_cast<size_t>(m) * N + tile + r] = FromFloat<E>(sum);
  }
}

template <Elem E>
cudaError_t LaunchMma(const void* x, const void* values, const uint8_t* meta, void* y, int M, int N,
                      int K, cudaStream_t stream) {
  const dim3 grid((N + 15) / 16);
  auto* xp = static_cast<const uint16_t*>(x);
  auto* vp = static_cast<const uint16_t*>(values);
  auto* yp = static_cast<uint16_t*>(y);
  if (M <= 8) {
    Sparse24MmaKernel<E, 1><<<grid, kWarps * 32, 0, stream>>>(xp, vp, meta, yp, M, N, K);
  } else if (M <= 16) {
    Sparse24MmaKernel<E, 2><<<grid, kWarps * 32, 0, stream>>>(xp, vp, meta, yp, M, N, K);
  } else if (M <= 24) {
    Sparse24MmaKernel<E, 3><<<grid, kWarps * 32, 0, stream>>>(xp, vp, meta, yp, M, N, K);
  } else {
    Sparse24MmaKernel<E, 4><<<grid, kWarps * 32, 0, stream>>>(xp, vp, meta, yp, M, N, K);
  }
  return cudaGetLastError();
}

// One thread per group of 4: its kept pair and nibble -> 4 dense 16-bit values (8 bytes).
__global__ void Sparse24UnpackKernel(const uint32_t* __restrict__ pairs,
                                     const uint8_t* __restrict__ meta, uint2* __restrict__ dense,
                                     int64_t groups_per_row, int64_t meta_row, int64_t total) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / groups_per_row, gi = i % groups_per_row;
    const uint32_t nib = (meta[r * meta_row + gi / 2] >> (4 * (gi & 1))) & 15u;
    uint32_t lo, hi;
    Decompress(pairs[i], nib, lo, hi);
    dense[i] = make_uint2(lo, hi);
  }
}

}  // namespace

cudaError_t Sparse24GemmSmallM(Elem elem, const void* x, const void* values, const uint8_t* meta,
                               void* y, int M, int N, int K, cudaStream_t stream) {
  if (!DecodeArgsValid(x, values, meta, y, M, N, K, kMmaMaxM)) return cudaErrorInvalidValue;
  return elem == Elem::kBF16 ? LaunchMma<Elem::kBF16>(x, values, meta, y, M, N, K, stream)
                             : LaunchMma<Elem::kF16>(x, values, meta, y, M, N, K, stream);
}

cudaError_t Sparse24Unpack(const void* values, const uint8_t* meta, void* dense, int64_t N,
                           int64_t K, cudaStream_t stream) {
  if (N < 1 || K < 4 || K % 4 != 0) return cudaErrorInvalidValue;
  if (reinterpret_cast<uintptr_t>(values) % 4 || reinterpret_cast<uintptr_t>(dense) % 8)
    return cudaErrorInvalidValue;
  const int64_t groups = K / 4, total = N * groups;
  const int threads = 256;
  const int64_t want = (total + threads - 1) / threads;
  const int blocks = static_cast<int>(want < 65535 * 8 ? want : 65535 * 8);
  Sparse24UnpackKernel<<<blocks, threads, 0, stream>>>(static_cast<const uint32_t*>(values), meta,
                                                       static_cast<uint2*>(dense), groups,
                                                       (K + 7) / 8, total);
  return cudaGetLastError();
}

}  // namespace ps::sparse

// Sparse tensor-core decode kernel (see sparse24_spmma.h; the layout and the instruction's
// fragments are described in mma_sp_layout.h).
//
// Work split: a block of kWarps warps owns 16 row tiles (256 weight rows), kRowTiles per warp,
// and one slice of K (grid y). Every warp runs over the whole slice for its own rows, so there is
// no reduction inside a block. Per 128-column chunk a lane loads, per row tile, its 4 A fragments
// (4 x 16 bytes, each a coalesced 512-byte warp load) and its metadata for the 4 tiles (16
// bytes), then issues 4 x kRowTiles x NT mma.sp.
//
// The x slice of the block is staged once in shared memory, already in B-fragment order
// ([tile][token tile][lane] x 16 bytes), so each B fragment is one conflict-free 16-byte shared
// load shared by the block's 16 row tiles (x is read from L2 once per block, not once per warp).
// The first chunk's weights are requested before the staging, so the two overlap.
//
// Split K (SpmmaPlan): with N / 256 row blocks too few to fill the GPU (N = 4096: 16 blocks),
// K is cut into slices; each block writes fp32 partials and the last of a row block to arrive
// (counted with an atomic, after a fence) sums them and writes y.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "worker/sparse/mma_sp_layout.h"
#include "worker/sparse/sparse24_spmma.h"

namespace ps::sparse {
namespace {

using namespace spmma;

constexpr int kWarps = 8;
constexpr int kRowTiles = 2;                            // row tiles per warp
constexpr int kBlockRowTiles = kWarps * kRowTiles;      // 16
constexpr int kBlockRows = kBlockRowTiles * kTileRows;  // 256
// Dynamic shared memory per block without the opt-in, less room for the kernel's static shared
// variables (at exactly 48 KiB of dynamic memory the launch is refused).
constexpr int kMaxSmemBytes = 47 * 1024;
constexpr int kSmemBytesPerChunkTile = kChunkTiles * 32 * 16;  // one token tile of one chunk

template <Elem E>
__device__ __forceinline__ void MmaSp(float (&c)[4], const uint4& a, const uint4& b, uint32_t e) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// mma.sp::ordered_metadata (PTX 8.5) is the recommended form; our pairs are always increasing.
#if (__CUDACC_VER_MAJOR__ > 12) || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 5)
#define PS_MMA_SP "mma.sp::ordered_metadata.sync.aligned.m16n8k32.row.col.f32."
#else
#define PS_MMA_SP "mma.sp.sync.aligned.m16n8k32.row.col.f32."
#endif
  if constexpr (E == Elem::kBF16) {
    asm(PS_MMA_SP
        "bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y), "r"(b.z), "r"(b.w), "r"(e));
  } else {
    asm(PS_MMA_SP
        "f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9,%10,%11}, {%0,%1,%2,%3}, %12, 0x0;\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y), "r"(b.z), "r"(b.w), "r"(e));
  }
#undef PS_MMA_SP
#else
  (void)c, (void)a, (void)b, (void)e;
  __trap();  // sparse tensor cores need sm_80+
#endif
}

template <Elem E>
__device__ __forceinline__ uint16_t Round16(float f) {
  if constexpr (E == Elem::kBF16) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  } else {
    return __half_as_ushort(__float2half_rn(f));
  }
}

template <Elem E, int NT>
__global__ void __launch_bounds__(kWarps * 32, 2)
    Sparse24SpmmaKernel(const uint16_t* __restrict__ x, const uint4* __restrict__ values,
                        const uint4* __restrict__ meta, uint16_t* __restrict__ y,
                        float* __restrict__ partial, unsigned* __restrict__ counters, int M, int N,
                        int K, int chunks, int chunks_per_split, int splits) {
  extern __shared__ uint4 xs[];  // [slice tile][token tile][lane]: B fragments
  __shared__ bool last_block;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row_tiles = (N + kTileRows - 1) / kTileRows;
  const int c0 = blockIdx.y * chunks_per_split;
  const int c1 = min(c0 + chunks_per_split, chunks);
  const int rt0 = blockIdx.x * kBlockRowTiles + warp * kRowTiles;
  const bool active = rt0 < row_tiles && c0 < c1;
  const int g = lane >> 2;

  uint4 a[kRowTiles][kChunkTiles], e[kRowTiles];
  auto load = [&](int c) {
#pragma unroll
    for (int r = 0; r < kRowTiles; ++r) {
      const int rt = min(rt0 + r, row_tiles - 1);  // a missing tile repeats a real one, unstored
#pragma unroll
      for (int tile = 0; tile < kChunkTiles; ++tile)
        a[r][tile] = __ldg(values + ValueWord(chunks, rt, c, tile, lane, 0) / 4);
      // Lanes 4g + 2, 4g + 3 load what 4g, 4g + 1 do (same sector); selector 0 ignores them.
      e[r] = __ldg(meta + MetaWord(chunks, rt, c, g, lane & 1, 0) / 4);
    }
  };
  if (active) load(c0);

  // Stage x[:, slice] as B fragments. A unit is 8 columns (16 bytes) of one token: k 8·reg ..
  // 8·reg + 7 of a tile, i.e. register `reg` of lanes 4·(m % 8) + 0..3 (two columns each).
  const int slice_tiles = (c1 - c0) * kChunkTiles;
  const int units = NT * 8 * slice_tiles * 4;
  for (int i = threadIdx.x; i < units; i += blockDim.x) {
    const int m = i / (slice_tiles * 4), u = i % (slice_tiles * 4);
    const int col = c0 * kChunkK + u * 8;
    uint4 v = make_uint4(0, 0, 0, 0);  // padding tokens and columns multiply as zeros
    if (m < M && col < K)
      v = __ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * K + col));
    const int j = u >> 2, kk = (u & 3) * 8;
    uint32_t* dst = reinterpret_cast<uint32_t*>(xs);
    dst[XStageWord(j, NT, m, kk)] = v.x;
    dst[XStageWord(j, NT, m, kk + 2)] = v.y;
    dst[XStageWord(j, NT, m, kk + 4)] = v.z;
    dst[XStageWord(j, NT, m, kk + 6)] = v.w;
  }
  __syncthreads();

  float acc[kRowTiles][NT][4];
#pragma unroll
  for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[r][n][i] = 0.f;

  if (active) {
    for (int c = c0; c < c1; ++c) {
      if (c != c0) load(c);
#pragma unroll
      for (int tile = 0; tile < kChunkTiles; ++tile) {
        uint4 b[NT];
#pragma unroll
        for (int n = 0; n < NT; ++n)
          b[n] = xs[(((c - c0) * kChunkTiles + tile) * NT + n) * 32 + lane];
#pragma unroll
        for (int r = 0; r < kRowTiles; ++r) {
          const uint32_t ew = tile == 0 ? e[r].x : tile == 1 ? e[r].y : tile == 2 ? e[r].z : e[r].w;
#pragma unroll
          for (int n = 0; n < NT; ++n) MmaSp<E>(acc[r][n], a[r][tile], b[n], ew);
        }
      }
    }
  }

  if (splits == 1) {
    if (!active) return;
#pragma unroll
    for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = (rt0 + r) * kTileRows + CRow(lane, i), m = n * 8 + CToken(lane, i);
          if (row < N && m < M) y[static_cast<size_t>(m) * N + row] = Round16<E>(acc[r][n][i]);
        }
    return;
  }
  if (active) {
    float* part = partial + static_cast<size_t>(blockIdx.y) * M * N;
#pragma unroll
    for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = (rt0 + r) * kTileRows + CRow(lane, i), m = n * 8 + CToken(lane, i);
          if (row < N && m < M) part[static_cast<size_t>(m) * N + row] = acc[r][n][i];
        }
  }
  // Publish the partials, then count this block in; the last of the row block sums.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(counters + blockIdx.x, 1u) == unsigned(splits - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  const int row0 = blockIdx.x * kBlockRows, rows = min(kBlockRows, N - row0);
  for (int i = threadIdx.x; i < M * rows; i += blockDim.x) {
    const int m = i / rows, row = row0 + i % rows;
    float s = 0.f;
    for (int sp = 0; sp < splits; ++sp)
      s += __ldcg(partial + (static_cast<size_t>(sp) * M + m) * N + row);
    y[static_cast<size_t>(m) * N + row] = Round16<E>(s);
  }
  if (threadIdx.x == 0) counters[blockIdx.x] = 0;  // ready for the next launch
}

template <Elem E, int NT>
cudaError_t Launch(const void* x, const uint32_t* values, const uint32_t* meta, void* y,
                   const SpmmaPlan& p, float* workspace, unsigned* counters, cudaStream_t stream) {
  const Shape s = MakeShape(p.n, p.k);
  const dim3 grid(p.row_blocks, p.splits);
  const size_t smem = static_cast<size_t>(p.chunks_per_split) * NT * kSmemBytesPerChunkTile;
  Sparse24SpmmaKernel<E, NT><<<grid, kWarps * 32, smem, stream>>>(
      static_cast<const uint16_t*>(x), reinterpret_cast<const uint4*>(values),
      reinterpret_cast<const uint4*>(meta), static_cast<uint16_t*>(y), workspace, counters, p.m,
      p.n, p.k, static_cast<int>(s.chunks), p.chunks_per_split, p.splits);
  return cudaGetLastError();
}

template <Elem E>
cudaError_t Dispatch(const void* x, const uint32_t* values, const uint32_t* meta, void* y,
                     const SpmmaPlan& p, float* workspace, unsigned* counters,
                     cudaStream_t stream) {
  switch (p.tiles_n) {
    case 1:
      return Launch<E, 1>(x, values, meta, y, p, workspace, counters, stream);
    case 2:
      return Launch<E, 2>(x, values, meta, y, p, workspace, counters, stream);
    case 3:
      return Launch<E, 3>(x, values, meta, y, p, workspace, counters, stream);
    default:
      return Launch<E, 4>(x, values, meta, y, p, workspace, counters, stream);
  }
}

}  // namespace

SpmmaPlan Sparse24SpmmaPlan(int M, int N, int K, int sm_count, int splits) {
  SpmmaPlan p;
  p.m = M;
  p.n = N;
  p.k = K;
  if (M < 1 || N < 1 || K < 1) return p;
  const Shape s = MakeShape(N, K);
  const int chunks = static_cast<int>(s.chunks);
  p.tiles_n = (std::min(M, kSpmmaMaxM) + 7) / 8;
  p.row_blocks = static_cast<int>((s.row_tiles + kBlockRowTiles - 1) / kBlockRowTiles);
  const int max_cps = std::max(1, kMaxSmemBytes / (p.tiles_n * kSmemBytesPerChunkTile));
  int want = splits > 0 ? splits : (2 * std::max(sm_count, 1) + p.row_blocks - 1) / p.row_blocks;
  want = std::clamp(want, 1, chunks);
  p.chunks_per_split = std::min((chunks + want - 1) / want, max_cps);
  p.splits = (chunks + p.chunks_per_split - 1) / p.chunks_per_split;  // no empty slice
  p.workspace_floats = p.splits > 1 ? static_cast<int64_t>(p.splits) * M * N : 0;
  return p;
}

int DeviceSmCount() {
  static int cached[64] = {};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 1;
  if (dev >= 0 && dev < 64 && cached[dev] > 0) return cached[dev];
  int count = 1;
  if (cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) count = 1;
  if (dev >= 0 && dev < 64) cached[dev] = count;
  return count;
}

cudaError_t Sparse24Spmma(Elem elem, const void* x, const uint32_t* values, const uint32_t* meta,
                          void* y, const SpmmaPlan& plan, float* workspace, unsigned* counters,
                          cudaStream_t stream) {
  auto aligned = [](const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; };
  const bool ok = plan.m >= 1 && plan.m <= kSpmmaMaxM && plan.n >= 1 && plan.k >= 16 &&
                  plan.k % 16 == 0 && plan.row_blocks >= 1 && plan.splits >= 1 &&
                  plan.tiles_n == (plan.m + 7) / 8 && aligned(x, 16) && aligned(values, 16) &&
                  aligned(meta, 16) && aligned(y, 2) &&
                  (plan.splits == 1 || (workspace != nullptr && counters != nullptr));
  if (!ok) return cudaErrorInvalidValue;
  return elem == Elem::kBF16
             ? Dispatch<Elem::kBF16>(x, values, meta, y, plan, workspace, counters, stream)
             : Dispatch<Elem::kF16>(x, values, meta, y, plan, workspace, counters, stream);
}

}  // namespace ps::sparse

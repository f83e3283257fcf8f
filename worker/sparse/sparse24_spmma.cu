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
// load shared by the block's 16 row tiles (x is read from L2 once per block, not once per warp);
// the staging itself writes whole fragments (see there), also free of bank conflicts.
// The first chunk's weights are requested before the staging, so the two overlap.
//
// Split K (SpmmaPlan): with N / 256 row blocks too few to fill the GPU (N = 4096: 16 blocks),
// K is cut into slices; each block writes fp32 partials and the last of a row block to arrive
// (counted with an atomic, after a fence) sums them and writes y, 4 rows per thread and 8 slices'
// loads in flight at a time: that sum reads splits x M x 256 floats on one SM after the rest of
// the row block is done, so its latency is the kernel's tail and grows with M.
//
// Variant 3 (Hopper) sums the slices without the global round trip: the slices of a row block
// are one thread block cluster (at most 8), each block leaves its fp32 sums in its own shared
// memory, and after a cluster barrier block s sums every s-th group of 4 rows over all the
// cluster's blocks (distributed shared memory, slice order) and writes y. No partials in global
// memory, no atomics, and the sum is spread over the cluster instead of one block's tail.
#include <cooperative_groups.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "worker/sparse/mma_sp_layout.h"
#include "worker/sparse/sparse24_spmma.h"

namespace ps::sparse {
namespace {

using namespace spmma;

constexpr int kWarps = 8;
// The variants (SpmmaPlan::variant): row tiles per warp, whether the next chunk's weights are
// loaded while the current one's are multiplied (two register sets), blocks per multiprocessor.
// Variant 4 is variant 1 at 3 blocks per SM (at most 85 registers, and more K slices): more
// warps, so more weight loads in flight per SM, which is what 32 tokens lack.
__host__ __device__ constexpr int RowTilesOf(int v) { return v == 0 || v == 2 ? 2 : 1; }
__host__ __device__ constexpr bool PrefetchOf(int v) { return v != 0; }
__host__ __device__ constexpr int BlocksPerSmOf(int v) { return v == 2 ? 1 : v == 4 ? 3 : 2; }
__host__ __device__ constexpr int BlockRowTiles(int v) { return kWarps * RowTilesOf(v); }
__host__ __device__ constexpr bool ClusterSumOf(int v) { return v == 3; }
// Dynamic shared memory per block without the opt-in, less room for the kernel's static shared
// variables (at exactly 48 KiB of dynamic memory the launch is refused).
constexpr int kMaxSmemBytes = 47 * 1024;
// The cluster variant opts in to more (two blocks per SM must fit the SM's 228 KiB) and so
// takes whole K slices of up to 8 (the portable cluster size) x 110 KiB.
constexpr int kMaxClusterSmemBytes = 110 * 1024;
constexpr int kMaxClusterSize = 8;
constexpr int kSmemBytesPerChunkTile = kChunkTiles * 32 * 16;  // one token tile of one chunk
// The cluster variant's fp32 sums in shared memory: [token][row] with rows padded by 4 floats,
// so that the four lanes writing one row at tokens 2t, 2t + 1 hit different banks (and rows stay
// 16-byte aligned for the float4 reads).
constexpr int kSumStride = kWarps * kTileRows + 4;
__host__ __device__ constexpr int SumSmemBytes(int nt) { return nt * 8 * kSumStride * 4; }

// Four fp32 sums of consecutive rows rounded to E and packed for one 8-byte store.
template <Elem E>
__device__ __forceinline__ uint2 RoundFour(const float4& t) {
  return make_uint2(FromFloat<E>(t.x) | (uint32_t(FromFloat<E>(t.y)) << 16),
                    FromFloat<E>(t.z) | (uint32_t(FromFloat<E>(t.w)) << 16));
}

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

// Variant 3's sum of the K slices of one row block (one block per slice, the slices one cluster
// with block rank = slice): `acc` is this warp's single row tile. Every thread of every block of
// the cluster calls it (it holds two cluster barriers).
template <Elem E, int NT>
__device__ __forceinline__ void ClusterSum(uint4* smem, const float (&acc)[NT][4], uint16_t* y,
                                           int M, int N, int splits, bool vec4) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  namespace cg = cooperative_groups;
  cg::cluster_group cluster = cg::this_cluster();
  constexpr int kBlockRows = kWarps * kTileRows;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float* sums = reinterpret_cast<float*>(smem);
  __syncthreads();  // every warp is done with the x slice that `sums` overwrites
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i)
      sums[(n * 8 + CToken(lane, i)) * kSumStride + warp * kTileRows + CRow(lane, i)] = acc[n][i];
  cluster.sync();  // all slices' sums are written and visible to the cluster
  const int row0 = blockIdx.x * kBlockRows, rows = min(kBlockRows, N - row0);
  const int quads = kBlockRows / 4, rank = static_cast<int>(cluster.block_rank());
  for (int i = rank * blockDim.x + threadIdx.x; i < M * quads; i += splits * blockDim.x) {
    const int m = i / quads, r = 4 * (i % quads);
    if (r >= rows) continue;
    float4 v[kMaxClusterSize];
#pragma unroll
    for (int s = 0; s < kMaxClusterSize; ++s)
      if (s < splits)
        v[s] = *reinterpret_cast<const float4*>(
            cluster.map_shared_rank(sums + m * kSumStride + r, static_cast<unsigned>(s)));
    float4 t = make_float4(0.f, 0.f, 0.f, 0.f);  // in slice order, as the global sum
#pragma unroll
    for (int s = 0; s < kMaxClusterSize; ++s)
      if (s < splits) {
        t.x += v[s].x;
        t.y += v[s].y;
        t.z += v[s].z;
        t.w += v[s].w;
      }
    uint16_t* out = y + static_cast<size_t>(m) * N + row0 + r;
    if (vec4 && r + 4 <= rows) {
      *reinterpret_cast<uint2*>(out) = RoundFour<E>(t);
    } else {
      const float e[4] = {t.x, t.y, t.z, t.w};
      for (int q = 0; q < 4 && r + q < rows; ++q) out[q] = FromFloat<E>(e[q]);
    }
  }
  cluster.sync();  // no block leaves (freeing its shared memory) while another still reads it
#else
  (void)smem, (void)acc, (void)y, (void)M, (void)N, (void)splits, (void)vec4;
  __trap();  // thread block clusters need sm_90+
#endif
}

template <Elem E, int NT, int V>
__global__ void __launch_bounds__(kWarps * 32, BlocksPerSmOf(V))
    Sparse24SpmmaKernel(const uint16_t* __restrict__ x, const uint4* __restrict__ values,
                        const uint4* __restrict__ meta, uint16_t* __restrict__ y,
                        float* __restrict__ partial, unsigned* __restrict__ counters, int M, int N,
                        int K, int chunks, int chunks_per_split, int splits, bool vec4) {
  constexpr int kRowTiles = RowTilesOf(V);
  constexpr bool kPrefetch = PrefetchOf(V);
  constexpr int kBlockRowTiles = BlockRowTiles(V);
  constexpr int kBlockRows = kBlockRowTiles * kTileRows;
  extern __shared__ uint4 xs[];  // [slice tile][token tile][lane]: B fragments
  __shared__ bool last_block;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row_tiles = (N + kTileRows - 1) / kTileRows;
  const int c0 = blockIdx.y * chunks_per_split;
  const int c1 = min(c0 + chunks_per_split, chunks);
  const int rt0 = blockIdx.x * kBlockRowTiles + warp * kRowTiles;
  const bool active = rt0 < row_tiles && c0 < c1;
  const int g = lane >> 2;

  using Frags = uint4[kRowTiles][kChunkTiles];
  using Metas = uint4[kRowTiles];
  uint4 a[kRowTiles][kChunkTiles], e[kRowTiles];
  auto load_into = [&](int c, Frags& a, Metas& e) {
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
  if (active) load_into(c0, a, e);

  // Stage x[:, slice] as B fragments. Four neighbouring threads load one token's 32 columns of a
  // tile (16 bytes each: register `q` of the fragments of lanes 4·(m % 8) + 0..3), swap words
  // among themselves (a 4 x 4 transpose through shuffles) so that each holds one lane's whole
  // fragment, and store it with one 16-byte shared store; a warp then writes 512 contiguous bytes
  // (8 tokens x 4 lanes), free of bank conflicts, after 8 x 64-byte coalesced loads.
  const int slice_tiles = (c1 - c0) * kChunkTiles;
  const int quads = NT * 8 * slice_tiles;  // (token, tile) pairs, 4 threads each
  // kStageBatch loads per thread are issued before any of them is used: the staging is one L2
  // round trip per batch, not one per load (at 32 tokens a thread has up to 8 loads).
  constexpr int kStageBatch = 4;
  for (int base = 0; base < quads * 4; base += kStageBatch * blockDim.x) {
    uint4 v[kStageBatch];
#pragma unroll
    for (int s = 0; s < kStageBatch; ++s) {
      const int i = base + s * blockDim.x + threadIdx.x, q = i & 3, m = (i >> 2) % (NT * 8),
                j = (i >> 2) / (NT * 8);
      const int col = c0 * kChunkK + j * kTileK + q * 8;
      v[s] = make_uint4(0, 0, 0, 0);  // padding tokens and columns multiply as zeros
      if (j < slice_tiles && m < M && col < K)
        v[s] = __ldg(reinterpret_cast<const uint4*>(x + static_cast<size_t>(m) * K + col));
    }
#pragma unroll
    for (int s = 0; s < kStageBatch; ++s) {
      const int i = base + s * blockDim.x + threadIdx.x, q = i & 3, m = (i >> 2) % (NT * 8),
                j = (i >> 2) / (NT * 8);
      // v's word w belongs to lane 4·(m % 8) + w, register q. Round r: thread q reads register
      // (q + r) & 3 from neighbour (q + r) & 3, which sends its word (its q - r) & 3 = our q.
      const uint32_t w[4] = {v[s].x, v[s].y, v[s].z, v[s].w};
      uint32_t f[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int send = (q - r) & 3, from = (q + r) & 3;
        const uint32_t out = send == 0 ? w[0] : send == 1 ? w[1] : send == 2 ? w[2] : w[3];
        const uint32_t got = __shfl_sync(0xffffffffu, out, (lane & ~3) | from);
        if (from == 0) f[0] = got;
        if (from == 1) f[1] = got;
        if (from == 2) f[2] = got;
        if (from == 3) f[3] = got;
      }
      if (j < slice_tiles) xs[XStageWord(j, NT, m, 2 * q) / 4] = make_uint4(f[0], f[1], f[2], f[3]);
    }
  }
  __syncthreads();

  float acc[kRowTiles][NT][4];
#pragma unroll
  for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[r][n][i] = 0.f;

  auto multiply = [&](int c, const Frags& a, const Metas& e) {
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
  };
  if (active) {
    if constexpr (kPrefetch) {
      // Two register sets: chunk c + 1's loads are in flight while chunk c is multiplied.
      Frags a_next;
      Metas e_next;
      for (int c = c0; c < c1; c += 2) {
        if (c + 1 < c1) load_into(c + 1, a_next, e_next);
        multiply(c, a, e);
        if (c + 2 < c1) load_into(c + 2, a, e);
        if (c + 1 < c1) multiply(c + 1, a_next, e_next);
      }
    } else {
      for (int c = c0; c < c1; ++c) {
        if (c != c0) load_into(c, a, e);
        multiply(c, a, e);
      }
    }
  }

  // Each accumulator to its (token, row): y rounded when K is not split, else fp32 partials.
  auto store = [&](auto&& put) {
#pragma unroll
    for (int r = 0; r < kRowTiles; ++r)
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const int row = (rt0 + r) * kTileRows + CRow(lane, i), m = n * 8 + CToken(lane, i);
          if (row < N && m < M) put(static_cast<size_t>(m) * N + row, acc[r][n][i]);
        }
  };
  if (splits == 1) {
    if (active) store([&](size_t at, float v) { y[at] = FromFloat<E>(v); });
    return;
  }
  if constexpr (ClusterSumOf(V)) {
    ClusterSum<E, NT>(xs, acc[0], y, M, N, splits, vec4);
    return;
  }
  if (active) {
    float* part = partial + static_cast<size_t>(blockIdx.y) * M * N;
    store([&](size_t at, float v) { part[at] = v; });
  }
  // Publish the partials, then count this block in; the last of the row block sums.
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(counters + blockIdx.x, 1u) == unsigned(splits - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  const int row0 = blockIdx.x * kBlockRows, rows = min(kBlockRows, N - row0);
  // Summed in slice order (deterministic). kBatch slices' loads are issued before their adds, so
  // the block waits on L2 once per kBatch slices, not once per slice: this sum is the kernel's
  // tail, and it grows with M x splits.
  constexpr int kBatch = 8;
  if (vec4) {  // N % 4 == 0 and y 8-byte aligned: 4 rows per thread (float4 partials)
    const int quads = rows / 4;
    for (int i = threadIdx.x; i < M * quads; i += blockDim.x) {
      const int m = i / quads, row = row0 + 4 * (i % quads);
      float4 s = make_float4(0.f, 0.f, 0.f, 0.f);
      for (int sp0 = 0; sp0 < splits; sp0 += kBatch) {
        float4 v[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
          v[b] = sp0 + b < splits ? __ldcg(reinterpret_cast<const float4*>(
                                        partial + (static_cast<size_t>(sp0 + b) * M + m) * N + row))
                                  : make_float4(0.f, 0.f, 0.f, 0.f);
#pragma unroll
        for (int b = 0; b < kBatch; ++b) {
          s.x += v[b].x;
          s.y += v[b].y;
          s.z += v[b].z;
          s.w += v[b].w;
        }
      }
      *reinterpret_cast<uint2*>(y + static_cast<size_t>(m) * N + row) = RoundFour<E>(s);
    }
  } else {
    for (int i = threadIdx.x; i < M * rows; i += blockDim.x) {
      const int m = i / rows, row = row0 + i % rows;
      float s = 0.f;
      for (int sp0 = 0; sp0 < splits; sp0 += kBatch) {
        float v[kBatch];
#pragma unroll
        for (int b = 0; b < kBatch; ++b)
          v[b] = sp0 + b < splits
                     ? __ldcg(partial + (static_cast<size_t>(sp0 + b) * M + m) * N + row)
                     : 0.f;
#pragma unroll
        for (int b = 0; b < kBatch; ++b) s += v[b];
      }
      y[static_cast<size_t>(m) * N + row] = FromFloat<E>(s);
    }
  }
  if (threadIdx.x == 0) counters[blockIdx.x] = 0;  // ready for the next launch
}

// Dynamic shared memory of a launch: the staged x slice (and, for the cluster variant, at least
// the fp32 sums that reuse it).
int SmemBytes(int variant, int nt, int chunks_per_split) {
  const int x_bytes = chunks_per_split * nt * kSmemBytesPerChunkTile;
  return ClusterSumOf(variant) ? std::max(x_bytes, SumSmemBytes(nt)) : x_bytes;
}

// Attribute `attr` of the current device, read once per device into `cache` (devices 0..63; a
// positive value is remembered), or `fallback` when the runtime cannot say.
int CurrentDeviceAttribute(cudaDeviceAttr attr, int (&cache)[64], int fallback) {
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return fallback;
  const bool cached = dev >= 0 && dev < 64;
  if (cached && cache[dev] > 0) return cache[dev];
  int value = 0;
  if (cudaDeviceGetAttribute(&value, attr, dev) != cudaSuccess || value <= 0) value = fallback;
  if (cached) cache[dev] = value;
  return value;
}

// Whether the current device runs thread block clusters (compute capability 9.0+), looked up once
// per device.
bool DeviceHasClusters() {
  static int cache[64] = {};
  return CurrentDeviceAttribute(cudaDevAttrComputeCapabilityMajor, cache, 0) >= 9;
}

template <Elem E, int NT, int V>
cudaError_t Launch(const void* x, const uint32_t* values, const uint32_t* meta, void* y,
                   const SpmmaPlan& p, float* workspace, unsigned* counters, cudaStream_t stream) {
  const Shape s = MakeShape(p.n, p.k);
  const dim3 grid(p.row_blocks, p.splits);
  const int smem = SmemBytes(p.variant, NT, p.chunks_per_split);
  auto* kernel = Sparse24SpmmaKernel<E, NT, V>;
  const bool vec4 = p.n % 4 == 0 && reinterpret_cast<uintptr_t>(y) % 8 == 0;
  if constexpr (ClusterSumOf(V)) {
    // Above 48 KiB of dynamic shared memory a kernel must opt in, once per device (the first
    // launch of a shape runs eagerly, so a CUDA graph capture never makes this call).
    static int opted_in[64] = {};
    int dev = 0;
    if (smem > 48 * 1024 &&
        (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64 || smem > opted_in[dev])) {
      const cudaError_t err =
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
      if (err != cudaSuccess) return err;
      if (dev >= 0 && dev < 64) opted_in[dev] = smem;
    }
    cudaLaunchConfig_t config = {};
    config.gridDim = grid;
    config.blockDim = dim3(kWarps * 32);
    config.dynamicSmemBytes = static_cast<size_t>(smem);
    config.stream = stream;
    cudaLaunchAttribute cluster[1];
    cluster[0].id = cudaLaunchAttributeClusterDimension;
    cluster[0].val.clusterDim.x = 1;
    cluster[0].val.clusterDim.y = static_cast<unsigned>(p.splits);  // one cluster per row block
    cluster[0].val.clusterDim.z = 1;
    config.attrs = cluster;
    config.numAttrs = 1;
    return cudaLaunchKernelEx(
        &config, kernel, static_cast<const uint16_t*>(x), reinterpret_cast<const uint4*>(values),
        reinterpret_cast<const uint4*>(meta), static_cast<uint16_t*>(y), workspace, counters, p.m,
        p.n, p.k, static_cast<int>(s.chunks), p.chunks_per_split, p.splits, vec4);
  } else {
    kernel<<<grid, kWarps * 32, static_cast<size_t>(smem), stream>>>(
        static_cast<const uint16_t*>(x), reinterpret_cast<const uint4*>(values),
        reinterpret_cast<const uint4*>(meta), static_cast<uint16_t*>(y), workspace, counters, p.m,
        p.n, p.k, static_cast<int>(s.chunks), p.chunks_per_split, p.splits, vec4);
    return cudaGetLastError();
  }
}

template <Elem E, int NT>
cudaError_t DispatchVariant(const void* x, const uint32_t* values, const uint32_t* meta, void* y,
                            const SpmmaPlan& p, float* workspace, unsigned* counters,
                            cudaStream_t stream) {
  switch (p.variant) {
    case 0:
      return Launch<E, NT, 0>(x, values, meta, y, p, workspace, counters, stream);
    case 1:
      return Launch<E, NT, 1>(x, values, meta, y, p, workspace, counters, stream);
    case 2:
      return Launch<E, NT, 2>(x, values, meta, y, p, workspace, counters, stream);
    case 3:
      return Launch<E, NT, 3>(x, values, meta, y, p, workspace, counters, stream);
    default:
      return Launch<E, NT, 4>(x, values, meta, y, p, workspace, counters, stream);
  }
}

template <Elem E>
cudaError_t Dispatch(const void* x, const uint32_t* values, const uint32_t* meta, void* y,
                     const SpmmaPlan& p, float* workspace, unsigned* counters,
                     cudaStream_t stream) {
  switch (p.tiles_n) {
    case 1:
      return DispatchVariant<E, 1>(x, values, meta, y, p, workspace, counters, stream);
    case 2:
      return DispatchVariant<E, 2>(x, values, meta, y, p, workspace, counters, stream);
    case 3:
      return DispatchVariant<E, 3>(x, values, meta, y, p, workspace, counters, stream);
    default:
      return DispatchVariant<E, 4>(x, values, meta, y, p, workspace, counters, stream);
  }
}

}  // namespace

SpmmaPlan Sparse24SpmmaPlan(int M, int N, int K, int sm_count, int splits, int variant) {
  SpmmaPlan p;
  p.m = M;
  p.n = N;
  p.k = K;
  p.variant = variant;
  if (M < 1 || N < 1 || K < 1 || variant < 0 || variant >= kSpmmaVariants) return p;
  const Shape s = MakeShape(N, K);
  const int chunks = static_cast<int>(s.chunks);
  p.tiles_n = (std::min(M, kSpmmaMaxM) + 7) / 8;
  p.row_blocks =
      static_cast<int>((s.row_tiles + BlockRowTiles(variant) - 1) / BlockRowTiles(variant));
  const bool cluster = ClusterSumOf(variant);
  const int max_cps = std::max(
      1, (cluster ? kMaxClusterSmemBytes : kMaxSmemBytes) / (p.tiles_n * kSmemBytesPerChunkTile));
  const int blocks = BlocksPerSmOf(variant) * std::max(sm_count, 1);
  int want = splits > 0 ? splits : (blocks + p.row_blocks - 1) / p.row_blocks;
  want = std::clamp(want, 1, cluster ? std::min(chunks, kMaxClusterSize) : chunks);
  p.chunks_per_split = std::min((chunks + want - 1) / want, max_cps);
  p.splits = (chunks + p.chunks_per_split - 1) / p.chunks_per_split;  // no empty slice
  if (cluster) {
    // One cluster holds all slices: K too long for 8 slices of shared memory is not this
    // variant's, nor is a GPU without clusters.
    p.available = p.splits <= kMaxClusterSize && DeviceHasClusters();
    p.workspace_floats = 0;
    return p;
  }
  p.workspace_floats = p.splits > 1 ? static_cast<int64_t>(p.splits) * M * N : 0;
  return p;
}

int Sparse24SpmmaCounters(int N) {
  int most = 1;
  for (int v = 0; v < kSpmmaVariants; ++v)
    most = std::max(most,
                    (((N + kTileRows - 1) / kTileRows) + BlockRowTiles(v) - 1) / BlockRowTiles(v));
  return most;
}

int DeviceSmCount() {
  static int cache[64] = {};
  return CurrentDeviceAttribute(cudaDevAttrMultiProcessorCount, cache, 1);
}

cudaError_t Sparse24Spmma(Elem elem, const void* x, const uint32_t* values, const uint32_t* meta,
                          void* y, const SpmmaPlan& plan, float* workspace, unsigned* counters,
                          cudaStream_t stream) {
  auto aligned = [](const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; };
  const bool ok = plan.available && plan.m >= 1 && plan.m <= kSpmmaMaxM && plan.n >= 1 &&
                  plan.k >= 16 && plan.variant >= 0 && plan.variant < kSpmmaVariants &&
                  plan.k % 16 == 0 && plan.row_blocks >= 1 && plan.splits >= 1 &&
                  plan.tiles_n == (plan.m + 7) / 8 && aligned(x, 16) && aligned(values, 16) &&
                  aligned(meta, 16) && aligned(y, 2) &&
                  (plan.splits == 1 || ClusterSumOf(plan.variant) ||
                   (workspace != nullptr && aligned(workspace, 16) && counters != nullptr));
  if (!ok) return cudaErrorInvalidValue;
  return elem == Elem::kBF16
             ? Dispatch<Elem::kBF16>(x, values, meta, y, plan, workspace, counters, stream)
             : Dispatch<Elem::kF16>(x, values, meta, y, plan, workspace, counters, stream);
}

}  // namespace ps::sparse

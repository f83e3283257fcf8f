// CUDA kernels for the EnumALM prox. The per-group arithmetic is prox_group.h, shared with the CPU
// fast path; this file only moves bytes (16-byte vector loads/stores, a one-item prefetch so a
// load is in flight while the previous item computes), sets slow groups aside for the block's
// second pass, and reduces the statistics.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>
#include <type_traits>

#include "common/error.h"
#include "worker/prox/prox_cpu.h"
#include "worker/prox/prox_cuda.h"
#include "worker/prox/prox_group.h"

namespace ps::prox {
namespace {

struct F32 {
  using T = float;
  static constexpr int kBytes = 4;
  __device__ static float FromBits(uint32_t b) { return __uint_as_float(b); }
  __device__ static uint32_t ToBits(float f) { return __float_as_uint(f); }
  __device__ static bool NonZero(uint32_t b) { return (b & 0x7fffffffu) != 0; }
};
struct Bf16 {
  using T = uint16_t;
  static constexpr int kBytes = 2;
  __device__ static float FromBits(uint32_t b) { return __uint_as_float(b << 16); }
  __device__ static uint32_t ToBits(float f) {
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  }
  __device__ static bool NonZero(uint32_t b) { return (b & 0x7fffu) != 0; }
};
struct Fp16 {
  using T = uint16_t;
  static constexpr int kBytes = 2;
  __device__ static float FromBits(uint32_t b) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(b)));
  }
  __device__ static uint32_t ToBits(float f) { return __half_as_ushort(__float2half_rn(f)); }
  __device__ static bool NonZero(uint32_t b) { return (b & 0x7fffu) != 0; }
};

// Per-thread statistics, reduced per block at the end.
struct LocalStats {
  unsigned long long groups = 0, nsparse = 0, mid = 0, dense = 0, nonfinite = 0, unconverged = 0,
                     sweeps = 0;
  double objective = 0;

  // Counts one finite group whose stored result has nnz non-zeros (both kernels share this).
  template <int N, int M>
  __device__ void AddFinite(const GroupOutcome& o, int nnz) {
    nsparse += nnz <= N;
    mid += (nnz > N && nnz < M);
    dense += nnz == M;
    unconverged += o.converged ? 0 : 1;
    sweeps += o.sweeps;
    objective += o.objective;
  }
};

// An item: G groups of M values packed in W 32-bit words (16 or 32 bytes).
template <typename S, int N, int M>
struct Item {
  static constexpr int kGroupBytes = M * S::kBytes;
  static constexpr int G = kGroupBytes >= 16 ? 1 : 16 / kGroupBytes;
  static constexpr int kBytes = G * kGroupBytes;
  static constexpr int W = kBytes / 4;
  static constexpr int kVec = kBytes / 16;  // uint4 accesses per item
  static_assert(kBytes % 16 == 0);
  static constexpr int kPerWord = 4 / S::kBytes;

  __device__ static uint32_t Get(const uint32_t (&w)[W], int e) {
    if constexpr (kPerWord == 1) {
      return w[e];
    } else {
      return (w[e / 2] >> (16 * (e % 2))) & 0xffffu;
    }
  }
  __device__ static void Set(uint32_t (&w)[W], int e, uint32_t b) {
    if constexpr (kPerWord == 1) {
      w[e] = b;
    } else {
      const int s = 16 * (e % 2);
      w[e / 2] = (w[e / 2] & ~(0xffffu << s)) | (b << s);
    }
  }

  // Runs the prox on the G groups held in w (item number `item`). A group deferred by the budget
  // keeps its values in w and goes to `defer`, which returns false when its queue is full: then
  // the group is solved here without the budget.
  template <typename Defer>
  __device__ static void Process(uint32_t (&w)[W], int64_t item, float lambda, float tol,
                                 ProxAlgo algo, const GroupLimits& limits, Defer&& defer,
                                 LocalStats& st) {
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float y[M];
#pragma unroll
      for (int i = 0; i < M; ++i) y[i] = S::FromBits(Get(w, g * M + i));
      // One call site in a loop (a second one would inline the whole solver twice).
      GroupLimits lim = limits;
      GroupOutcome o;
      bool queued = false;
      while (true) {
        o = ProxGroup<N, M>(y, lambda, tol, algo, lim);
        if (!o.deferred) break;
        queued = defer(item * G + g);
        if (queued) break;
        lim.budget = 0;
      }
      if (queued) continue;
      ++st.groups;
      if (!o.finite) {
        ++st.nonfinite;
        continue;
      }
      int nnz = 0;
#pragma unroll
      for (int i = 0; i < M; ++i) {
        const uint32_t b = S::ToBits(y[i]);
        Set(w, g * M + i, b);
        nnz += S::NonZero(b) ? 1 : 0;
      }
      st.AddFinite<N, M>(o, nnz);
    }
  }
};

template <typename T>
__device__ T WarpSum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Block reduction of the per-thread statistics, then one atomic per counter per block.
__device__ void ReduceStats(const LocalStats& st, DeviceStats* out) {
  __shared__ unsigned long long cnt[32][7];
  __shared__ double obj[32];
  unsigned long long c[7] = {st.groups,    st.nsparse,     st.mid,   st.dense,
                             st.nonfinite, st.unconverged, st.sweeps};
  double o = st.objective;
#pragma unroll
  for (int k = 0; k < 7; ++k) c[k] = WarpSum(c[k]);
  o = WarpSum(o);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < 7; ++k) cnt[warp][k] = c[k];
    obj[warp] = o;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    const int warps = (blockDim.x + 31) / 32;
    unsigned long long t[7] = {0, 0, 0, 0, 0, 0, 0};
    double to = 0;
    for (int w = 0; w < warps; ++w) {
      for (int k = 0; k < 7; ++k) t[k] += cnt[w][k];
      to += obj[w];
    }
    unsigned long long* dst = &out->groups;
    for (int k = 0; k < 7; ++k)
      if (t[k] != 0) atomicAdd(dst + k, t[k]);
    if (to != 0) atomicAdd(&out->objective, to);
  }
}

// Solves one group in place at p (element loads and stores) and counts it.
template <typename S, int N, int M>
__device__ void ProxOneGroup(typename S::T* p, float lambda, float tol, ProxAlgo algo,
                             const GroupLimits& limits, LocalStats& st) {
  float y[M];
#pragma unroll
  for (int i = 0; i < M; ++i) {
    if constexpr (S::kBytes == 4) {
      y[i] = p[i];
    } else {
      y[i] = S::FromBits(p[i]);
    }
  }
  const GroupOutcome o = ProxGroup<N, M>(y, lambda, tol, algo, limits);
  ++st.groups;
  if (!o.finite) {
    ++st.nonfinite;
    return;
  }
  int nnz = 0;
#pragma unroll
  for (int i = 0; i < M; ++i) {
    const uint32_t b = S::ToBits(y[i]);
    if constexpr (S::kBytes == 4) {
      p[i] = __uint_as_float(b);
    } else {
      p[i] = static_cast<typename S::T>(b);
    }
    nnz += S::NonZero(b) ? 1 : 0;
  }
  st.AddFinite<N, M>(o, nnz);
}

// Groups the vector kernel's first pass set aside, per block (8 KiB of shared memory).
inline constexpr int kDeferQueue = 1024;

// Vectorised path: `items` whole items at a 16-byte aligned pointer, grid-stride, with the next
// item's load issued before the current one is processed. A group that needs more than
// limits.budget iterations is left as it was and queued; after the loop the block's threads solve
// the queued groups together, one per thread, so that the slow groups fill whole warps instead of
// each holding a warp of finished lanes.
template <typename S, int N, int M>
__global__ void ProxVecKernel(uint4* data, int64_t items, float lambda, float tol, ProxAlgo algo,
                              GroupLimits limits, DeviceStats* stats) {
  using I = Item<S, N, M>;
  __shared__ int64_t queue[kDeferQueue];
  __shared__ int queued;
  if (threadIdx.x == 0) queued = 0;
  __syncthreads();
  auto defer = [&](int64_t group) {
    const int slot = atomicAdd(&queued, 1);
    if (slot >= kDeferQueue) return false;
    queue[slot] = group;
    return true;
  };
  LocalStats st;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  uint32_t cur[I::W];
  auto load = [&](int64_t k, uint32_t(&w)[I::W]) {
#pragma unroll
    for (int v = 0; v < I::kVec; ++v) {
      const uint4 q = data[k * I::kVec + v];
      w[4 * v] = q.x;
      w[4 * v + 1] = q.y;
      w[4 * v + 2] = q.z;
      w[4 * v + 3] = q.w;
    }
  };
  if (i < items) load(i, cur);
  while (i < items) {
    const int64_t nx = i + stride;
    uint32_t nxt[I::W];
    if (nx < items) load(nx, nxt);
    I::Process(cur, i, lambda, tol, algo, limits, defer, st);
#pragma unroll
    for (int v = 0; v < I::kVec; ++v)
      data[i * I::kVec + v] =
          make_uint4(cur[4 * v], cur[4 * v + 1], cur[4 * v + 2], cur[4 * v + 3]);
#pragma unroll
    for (int k = 0; k < I::W; ++k) cur[k] = nxt[k];
    i = nx;
  }
  // The second pass: the queued groups, one per thread, without the budget. The first pass's
  // stores of their items are visible to the whole block after the barrier.
  __syncthreads();
  const int n = queued < kDeferQueue ? queued : kDeferQueue;
  GroupLimits unbudgeted = limits;
  unbudgeted.budget = 0;
  for (int k = threadIdx.x; k < n; k += blockDim.x)
    ProxOneGroup<S, N, M>(reinterpret_cast<typename S::T*>(data) + queue[k] * M, lambda, tol, algo,
                          unbudgeted, st);
  ReduceStats(st, stats);
}

// Scalar path: one group per thread, element loads (unaligned pointers and the tail).
template <typename S, int N, int M>
__global__ void ProxScalarKernel(typename S::T* data, int64_t groups, float lambda, float tol,
                                 ProxAlgo algo, GroupLimits limits, DeviceStats* stats) {
  LocalStats st;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
       g += stride)
    ProxOneGroup<S, N, M>(data + g * M, lambda, tol, algo, limits, st);
  ReduceStats(st, stats);
}

void Check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw Error(std::string("prox CUDA: ") + what + ": " + cudaGetErrorString(e));
}

// Blocks for `work` threads' worth of items: all SMs times the blocks that fit on one (occupancy,
// computed once per kernel and block size: it costs microseconds, the kernel itself tens).
struct GridCache {
  int block = 0, per_sm = 0;
};

template <typename K>
int GridFor(K kernel, GridCache& cache, int64_t work, const CudaLaunchOptions& opt) {
  int dev = 0, sms = 0, per_sm = opt.blocks_per_sm;
  Check(cudaGetDevice(&dev), "cudaGetDevice");
  Check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "device attribute");
  if (per_sm <= 0) {
    if (cache.block != opt.block) {
      int n = 0;
      Check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, opt.block, 0), "occupancy");
      cache.per_sm = n < 1 ? 1 : n;
      cache.block = opt.block;
    }
    per_sm = cache.per_sm;
  }
  const int64_t needed = (work + opt.block - 1) / opt.block;
  const int64_t grid = needed < int64_t{sms} * per_sm ? needed : int64_t{sms} * per_sm;
  return static_cast<int>(grid < 1 ? 1 : grid);
}

template <typename S, int N, int M>
void Launch(void* data, int64_t groups, float lambda, DeviceStats* stats, cudaStream_t stream,
            const CudaLaunchOptions& opt) {
  using I = Item<S, N, M>;
  const float tol = AlmRelTolFor(MantissaBits(S::kBytes == 4            ? DType::kF32
                                              : std::is_same_v<S, Bf16> ? DType::kBF16
                                                                        : DType::kF16));
  auto* base = static_cast<typename S::T*>(data);
  GroupLimits limits;
  limits.budget = opt.defer_budget;
  limits.max_iterations = opt.max_iterations;
  limits.closed_forms = opt.closed_forms;
  GroupLimits scalar_limits = limits;
  scalar_limits.budget = 0;
  int64_t done = 0;
  if (reinterpret_cast<uintptr_t>(data) % 16 == 0) {
    const int64_t items = groups / I::G;
    if (items > 0) {
      static GridCache cache;
      auto k = ProxVecKernel<S, N, M>;
      ProxVecKernel<S, N, M><<<GridFor(k, cache, items, opt), opt.block, 0, stream>>>(
          static_cast<uint4*>(data), items, lambda, tol, opt.algo, limits, stats);
      Check(cudaGetLastError(), "vector kernel launch");
    }
    done = items * I::G;
  }
  if (done < groups) {
    static GridCache cache;
    auto k = ProxScalarKernel<S, N, M>;
    ProxScalarKernel<S, N, M><<<GridFor(k, cache, groups - done, opt), opt.block, 0, stream>>>(
        base + done * M, groups - done, lambda, tol, opt.algo, scalar_limits, stats);
    Check(cudaGetLastError(), "scalar kernel launch");
  }
}

template <int N, int M>
void DispatchDType(void* data, DType dtype, int64_t groups, float lambda, DeviceStats* stats,
                   cudaStream_t stream, const CudaLaunchOptions& opt) {
  switch (dtype) {
    case DType::kF32:
      return Launch<F32, N, M>(data, groups, lambda, stats, stream, opt);
    case DType::kBF16:
      return Launch<Bf16, N, M>(data, groups, lambda, stats, stream, opt);
    case DType::kF16:
      return Launch<Fp16, N, M>(data, groups, lambda, stats, stream, opt);
    default:
      throw Error("prox CUDA: unsupported dtype");
  }
}

}  // namespace

void ProxCudaLaunch(void* data, DType dtype, int64_t groups, float lambda, NMPattern p,
                    DeviceStats* stats, void* stream, const CudaLaunchOptions& opt) {
  ValidateProxArgs(lambda, dtype, p);
  if (groups < 0) throw Error("prox CUDA: negative group count");
  if (opt.block < 32 || opt.block > 1024 || opt.block % 32 != 0)
    throw Error("prox CUDA: block size must be a multiple of 32 in [32, 1024]");
  if (static_cast<int>(opt.algo) < 0 || static_cast<int>(opt.algo) >= kProxAlgoCount)
    throw Error("prox CUDA: unknown algorithm " + std::to_string(static_cast<int>(opt.algo)));
  if (opt.defer_budget < 0 || opt.max_iterations < 1)
    throw Error("prox CUDA: defer_budget must be >= 0 and max_iterations >= 1");
  if (groups == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  if (p == NMPattern{2, 4}) return DispatchDType<2, 4>(data, dtype, groups, lambda, stats, s, opt);
  if (p == NMPattern{1, 4}) return DispatchDType<1, 4>(data, dtype, groups, lambda, stats, s, opt);
  if (p == NMPattern{2, 8}) return DispatchDType<2, 8>(data, dtype, groups, lambda, stats, s, opt);
  return DispatchDType<4, 8>(data, dtype, groups, lambda, stats, s, opt);
}

}  // namespace ps::prox

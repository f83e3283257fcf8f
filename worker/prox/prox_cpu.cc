#include "worker/prox/prox_cpu.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "common/error.h"
#include "worker/prox/float_convert.h"
#include "worker/prox/prox_group.h"
#include "worker/prox/prox_group_simd.h"

namespace ps::prox {
namespace {

struct F32 {
  using T = float;
  static float Load(T v) { return v; }
  static T Store(float f) { return f; }
  static bool NonZero(T v) { return v != 0.0f; }
};
struct Bf16 {
  using T = uint16_t;
  static float Load(T v) { return Bf16ToFloat(v); }
  static T Store(float f) { return FloatToBf16(f); }
  static bool NonZero(T v) { return (v & 0x7fffu) != 0; }
};
struct Fp16 {
  using T = uint16_t;
  static float Load(T v) { return Fp16ToFloat(v); }
  static T Store(float f) { return FloatToFp16(f); }
  static bool NonZero(T v) { return (v & 0x7fffu) != 0; }
};

// Stores one processed group (y as floats) and adds its statistics.
template <typename S, int N, int M>
void Finish(typename S::T* p, const float (&y)[M], bool finite, bool converged, int sweeps,
            double objective, ProxStats& st) {
  ++st.groups;
  if (!finite) {
    ++st.groups_nonfinite;
    return;
  }
  int nnz = 0;
  for (int i = 0; i < M; ++i) {
    p[i] = S::Store(y[i]);
    nnz += S::NonZero(p[i]) ? 1 : 0;
  }
  if (nnz <= N) {
    ++st.groups_nsparse;
  } else if (nnz < M) {
    ++st.groups_mid;
  } else {
    ++st.groups_dense;
  }
  st.groups_unconverged += converged ? 0 : 1;
  st.alm_sweeps += sweeps;
  st.objective += objective;
}

// The vectorised code pays only where a register holds all the lanes: on x86-64 it is compiled
// for AVX2 (8 lanes) and taken when the CPU has it; elsewhere the scalar code runs. (A 16-lane
// AVX-512 build was tried: GCC's code for it was slower than AVX2's on this development machine.)
#if defined(__x86_64__) && defined(__GNUC__)
#define PS_PROX_AVX2 __attribute__((target("avx2")))
bool HasAvx2() {
  static const bool ok = __builtin_cpu_supports("avx2");
  return ok;
}
#else
#define PS_PROX_AVX2
bool HasAvx2() { return false; }
#endif

// Groups [begin, end) in whole batches of V::kLanes through the vectorised code; returns where the
// batches stopped.
template <typename V, typename S, int N, int M>
inline __attribute__((always_inline)) int64_t ProxBatches(typename S::T* data, int64_t begin,
                                                          int64_t end, float lambda, float rel_tol,
                                                          ProxAlgo algo, ProxStats& st) {
  constexpr int kLanes = V::kLanes;
  int64_t g = begin;
  for (; g + kLanes <= end; g += kLanes) {
    typename S::T* p = data + g * M;
    simd::F<V> y[M] = {};
    for (int l = 0; l < kLanes; ++l)
      for (int i = 0; i < M; ++i) y[i][l] = S::Load(p[l * M + i]);
    const simd::Outcome<V> o = simd::ProxGroups<V, N, M>(y, lambda, rel_tol, algo);
    for (int l = 0; l < kLanes; ++l) {
      float yl[M];
      for (int i = 0; i < M; ++i) yl[i] = y[i][l];
      const double up = o.up[l];
      Finish<S, N, M>(p + l * M, yl, o.finite[l] != 0, o.converged[l] != 0, o.sweeps[l],
                      static_cast<double>(o.best_obj[l]) * up * up, st);
    }
  }
  return g;
}

template <typename S, int N, int M>
PS_PROX_AVX2 int64_t ProxBatchesAvx2(typename S::T* data, int64_t begin, int64_t end, float lambda,
                                     float rel_tol, ProxAlgo algo, ProxStats& st) {
  return ProxBatches<simd::Lanes8, S, N, M>(data, begin, end, lambda, rel_tol, algo, st);
}

// One contiguous range of groups; stats accumulate into `st`. Whole batches of kSimdLanes groups
// go through the vectorised code when it supports the algorithm and the CPU, the rest through the
// scalar code (the results are the same bit for bit).
template <typename S, int N, int M>
void ProxRange(typename S::T* data, int64_t begin, int64_t end, float lambda, float rel_tol,
               ProxAlgo algo, CpuPath path, ProxStats& st) {
  int64_t g = begin;
  // Vectorised for the groups of 4 (2:4, 1:4) only: 2:8 and 4:8 are rare and would double this
  // file's compile time.
  if constexpr (M == 4) {
    if (algo != ProxAlgo::kNewtonBounds) {
      if (path == CpuPath::kAvx2)
        g = ProxBatchesAvx2<S, N, M>(data, begin, end, lambda, rel_tol, algo, st);
    }
  }
  for (; g < end; ++g) {
    typename S::T* p = data + g * M;
    float y[M];
    for (int i = 0; i < M; ++i) y[i] = S::Load(p[i]);
    const GroupOutcome o = ProxGroup<N, M>(y, lambda, rel_tol, algo);
    Finish<S, N, M>(p, y, o.finite, o.converged, o.sweeps, o.objective, st);
  }
}

template <typename S, int N, int M>
ProxStats ProxThreaded(void* data, int64_t groups, float lambda, float rel_tol, int threads,
                       ProxAlgo algo, CpuPath path) {
  auto* d = static_cast<typename S::T*>(data);
  constexpr int64_t kChunk = 8192;  // groups per work item: small enough to balance slow groups
  const int64_t chunks = (groups + kChunk - 1) / kChunk;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, chunks)));
  std::vector<ProxStats> per(nt);
  std::atomic<int64_t> next{0};
  auto work = [&](int t) {
    for (int64_t c; (c = next.fetch_add(1)) < chunks;)
      ProxRange<S, N, M>(d, c * kChunk, std::min(groups, (c + 1) * kChunk), lambda, rel_tol, algo,
                         path, per[t]);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < nt; ++t) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  ProxStats total;
  for (const auto& s : per) total.Add(s);
  return total;
}

template <int N, int M>
ProxStats DispatchDType(void* data, DType dtype, int64_t groups, float lambda, int threads,
                        ProxAlgo algo, CpuPath path) {
  const float tol = AlmRelTolFor(MantissaBits(dtype));
  switch (dtype) {
    case DType::kF32:
      return ProxThreaded<F32, N, M>(data, groups, lambda, tol, threads, algo, path);
    case DType::kBF16:
      return ProxThreaded<Bf16, N, M>(data, groups, lambda, tol, threads, algo, path);
    case DType::kF16:
      return ProxThreaded<Fp16, N, M>(data, groups, lambda, tol, threads, algo, path);
    default:
      break;
  }
  throw Error("prox: unsupported dtype");
}

}  // namespace

bool ProxCpuSupports(CpuPath path) { return path != CpuPath::kAvx2 || HasAvx2(); }

const char* ProxCpuBestPath() { return HasAvx2() ? "avx2" : "scalar"; }

bool FastPathSupports(NMPattern p) {
  return p == NMPattern{2, 4} || p == NMPattern{1, 4} || p == NMPattern{2, 8} ||
         p == NMPattern{4, 8};
}

int MantissaBits(DType dtype) {
  switch (dtype) {
    case DType::kF32:
      return 23;
    case DType::kF16:
      return 10;
    case DType::kBF16:
      return 7;
    default:
      break;
  }
  throw Error("prox: weights must be F32, F16 or BF16, not " + std::string(DTypeName(dtype)));
}

void ValidateProxArgs(float lambda, DType dtype, NMPattern p) {
  if (!std::isfinite(lambda) || lambda < 0.0f)
    throw Error("prox: lambda must be finite and >= 0, got " + std::to_string(lambda));
  MantissaBits(dtype);
  ValidateNMPattern(p);
  if (!FastPathSupports(p))
    throw Error("prox: pattern " + p.ToString() + " is not compiled in (2:4, 1:4, 2:8, 4:8 are)");
}

ProxStats ProxCpu(void* data, DType dtype, int64_t groups, float lambda, NMPattern p, int threads,
                  ProxAlgo algo, CpuPath path) {
  ValidateProxArgs(lambda, dtype, p);
  if (groups < 0) throw Error("prox: negative group count");
  if (static_cast<int>(algo) < 0 || static_cast<int>(algo) >= kProxAlgoCount)
    throw Error("prox: unknown algorithm " + std::to_string(static_cast<int>(algo)));
  if (path == CpuPath::kBest) path = HasAvx2() ? CpuPath::kAvx2 : CpuPath::kScalar;
  if (!ProxCpuSupports(path)) throw Error("prox: this CPU lacks the requested vector unit");
  if (groups == 0) return {};
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (p == NMPattern{2, 4})
    return DispatchDType<2, 4>(data, dtype, groups, lambda, threads, algo, path);
  if (p == NMPattern{1, 4})
    return DispatchDType<1, 4>(data, dtype, groups, lambda, threads, algo, path);
  if (p == NMPattern{2, 8})
    return DispatchDType<2, 8>(data, dtype, groups, lambda, threads, algo, path);
  return DispatchDType<4, 8>(data, dtype, groups, lambda, threads, algo, path);
}

}  // namespace ps::prox

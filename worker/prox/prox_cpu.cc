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

// One contiguous range of groups; stats accumulate into `st`.
template <typename S, int N, int M>
void ProxRange(typename S::T* data, int64_t begin, int64_t end, float lambda, float rel_tol,
               ProxAlgo algo, ProxStats& st) {
  for (int64_t g = begin; g < end; ++g) {
    typename S::T* p = data + g * M;
    float y[M];
    for (int i = 0; i < M; ++i) y[i] = S::Load(p[i]);
    const GroupOutcome o = ProxGroup<N, M>(y, lambda, rel_tol, algo);
    ++st.groups;
    if (!o.finite) {
      ++st.groups_nonfinite;
      continue;
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
    st.groups_unconverged += o.converged ? 0 : 1;
    st.alm_sweeps += o.sweeps;
    st.objective += o.objective;
  }
}

template <typename S, int N, int M>
ProxStats ProxThreaded(void* data, int64_t groups, float lambda, float rel_tol, int threads,
                       ProxAlgo algo) {
  auto* d = static_cast<typename S::T*>(data);
  constexpr int64_t kChunk = 8192;  // groups per work item: small enough to balance slow groups
  const int64_t chunks = (groups + kChunk - 1) / kChunk;
  const int nt = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, chunks)));
  std::vector<ProxStats> per(nt);
  std::atomic<int64_t> next{0};
  auto work = [&](int t) {
    for (int64_t c; (c = next.fetch_add(1)) < chunks;)
      ProxRange<S, N, M>(d, c * kChunk, std::min(groups, (c + 1) * kChunk), lambda, rel_tol, algo,
                         per[t]);
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
                        ProxAlgo algo) {
  const float tol = AlmRelTolFor(MantissaBits(dtype));
  switch (dtype) {
    case DType::kF32:
      return ProxThreaded<F32, N, M>(data, groups, lambda, tol, threads, algo);
    case DType::kBF16:
      return ProxThreaded<Bf16, N, M>(data, groups, lambda, tol, threads, algo);
    case DType::kF16:
      return ProxThreaded<Fp16, N, M>(data, groups, lambda, tol, threads, algo);
    default:
      break;
  }
  throw Error("prox: unsupported dtype");
}

}  // namespace

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
                  ProxAlgo algo) {
  ValidateProxArgs(lambda, dtype, p);
  if (groups < 0) throw Error("prox: negative group count");
  if (static_cast<int>(algo) < 0 || static_cast<int>(algo) >= kProxAlgoCount)
    throw Error("prox: unknown algorithm " + std::to_string(static_cast<int>(algo)));
  if (groups == 0) return {};
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (p == NMPattern{2, 4}) return DispatchDType<2, 4>(data, dtype, groups, lambda, threads, algo);
  if (p == NMPattern{1, 4}) return DispatchDType<1, 4>(data, dtype, groups, lambda, threads, algo);
  if (p == NMPattern{2, 8}) return DispatchDType<2, 8>(data, dtype, groups, lambda, threads, algo);
  return DispatchDType<4, 8>(data, dtype, groups, lambda, threads, algo);
}

}  // namespace ps::prox

// The CUDA prox: the raw-pointer kernel launcher (prox_cuda.cu). Torch-free and CUDA-header-free
// so the LibTorch adapter (prox.cc) and the bench can call it; the stream is a cudaStream_t passed
// as void*. One thread per item of 16 bytes (two bf16/fp16 groups of 4, one fp32 group of 4),
// loaded and stored with 16-byte vector accesses when the pointer is aligned; per-group ALM
// convergence; statistics reduced per block, then added atomically into `stats`. Groups that need
// more than CudaLaunchOptions::defer_budget iterations are set aside in a per-block queue and
// solved at the end of the block by all its threads together, so that the few slow groups of a
// large lambda do not hold whole warps of finished lanes.
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "common/nm_pattern.h"
#include "worker/prox/prox_algo.h"
#include "worker/prox/prox_group.h"
#include "worker/prox/prox_stats.h"

namespace ps::prox {

// The device-side statistics block the kernel adds into (64 bytes; zero it before the first
// launch). The layout is an int64[8] tensor's: seven counters, then the objective as a double.
struct DeviceStats {
  unsigned long long groups, nsparse, mid, dense, nonfinite, unconverged, sweeps;
  double objective;
};
static_assert(sizeof(DeviceStats) == 64);

inline ProxStats ToProxStats(const DeviceStats& d) {
  ProxStats s;
  s.groups = static_cast<int64_t>(d.groups);
  s.groups_nsparse = static_cast<int64_t>(d.nsparse);
  s.groups_mid = static_cast<int64_t>(d.mid);
  s.groups_dense = static_cast<int64_t>(d.dense);
  s.groups_nonfinite = static_cast<int64_t>(d.nonfinite);
  s.groups_unconverged = static_cast<int64_t>(d.unconverged);
  s.alm_sweeps = static_cast<int64_t>(d.sweeps);
  s.objective = d.objective;
  return s;
}

// Iterations (all candidates of a group) after which the vector kernel defers a group to the
// block's second pass; 0 = one pass. Chosen with prox_bench on the H100 (docs/prox.md): with the
// closed forms and per-candidate convergence, ALM's one pass is the fastest at lambda 25 (bf16
// 250 ms per 7B pass against 326 ms with a budget of 16; fp32 352 vs 451) and equal at 0.25.
inline constexpr int kDefaultCudaDeferBudget = 0;

struct CudaLaunchOptions {
  int block = 256;                       // threads per block
  int blocks_per_sm = 0;                 // 0: as many as fit (occupancy calculator)
  ProxAlgo algo = kDefaultCudaProxAlgo;  // per-group solver (prox_bench --algos compares them)
  int defer_budget = kDefaultCudaDeferBudget;  // 0: no second pass
  // The iteration cap (prox_group.h GroupLimits); the bench sets the first release's 100 to
  // compare with it.
  int max_iterations = kMaxIterations;
  bool closed_forms = true;  // GroupLimits::closed_forms (off: the first release's algorithm)
};

// Launches prox_{lambda Reg_{N:M}} on `groups` groups at device pointer `data` (F32/F16/BF16),
// in place, asynchronously on `stream`. Validates the arguments (ps::Error) and reports launch
// errors as ps::Error. Groups with a NaN/Inf are left unchanged and counted.
void ProxCudaLaunch(void* data, DType dtype, int64_t groups, float lambda, NMPattern p,
                    DeviceStats* stats, void* stream, const CudaLaunchOptions& opt = {});

}  // namespace ps::prox

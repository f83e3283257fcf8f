#include "worker/prox/prox.h"

#include <cstring>
#include <string>

#include "common/error.h"
#include "worker/io/tensor_io.h"
#include "worker/prox/prox_cpu.h"
#include "worker/prox/prox_cuda.h"

#ifdef PS_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace ps::prox {
namespace {

void CheckWeight(const torch::Tensor& w, NMPattern p) {
  ValidateNMPattern(p);
  if (!w.defined()) throw Error("prox: undefined tensor");
  const auto st = w.scalar_type();
  if (st != torch::kFloat32 && st != torch::kFloat16 && st != torch::kBFloat16)
    throw Error(std::string("prox: weights must be float32, float16 or bfloat16, not ") +
                c10::toString(st));
  if (w.dim() < 1) throw Error("prox: the weight must have at least one dimension");
  if (w.size(-1) % p.m != 0)
    throw Error("prox: last dimension " + std::to_string(w.size(-1)) + " is not divisible by M = " +
                std::to_string(p.m) + " (pattern " + p.ToString() + ")");
  if (!w.is_contiguous()) throw Error("prox: the weight must be contiguous (groups are row-major)");
}

// The int64[8] stats buffer viewed as a DeviceStats (same layout on host and device).
DeviceStats* StatsPtr(torch::Tensor& stats, const torch::Device& device) {
  if (stats.scalar_type() != torch::kInt64 || stats.numel() != 8 || !stats.is_contiguous())
    throw Error("prox: the statistics buffer must be a contiguous int64[8] (NewStatsBuffer)");
  if (stats.device() != device) throw Error("prox: statistics buffer on another device");
  return reinterpret_cast<DeviceStats*>(stats.data_ptr<int64_t>());
}

}  // namespace

bool CudaCompiled() {
#ifdef PS_WITH_CUDA
  return true;
#else
  return false;
#endif
}

torch::Tensor NewStatsBuffer(const torch::Device& device) {
  return torch::zeros({8}, torch::dtype(torch::kInt64).device(device));
}

void ProxInPlaceAccumulate(torch::Tensor& w, float lambda, NMPattern p, torch::Tensor& stats,
                           std::optional<ProxAlgo> algo) {
  CheckWeight(w, p);
  const DType dtype = FromTorch(w.scalar_type());
  ValidateProxArgs(lambda, dtype, p);
  const int64_t groups = w.numel() / p.m;
  DeviceStats* out = StatsPtr(stats, w.device());
  if (w.device().is_cpu()) {
    const ProxStats s = ProxCpu(w.data_ptr(), dtype, groups, lambda, p, /*threads=*/0,
                                algo.value_or(kDefaultProxAlgo));
    out->groups += s.groups;
    out->nsparse += s.groups_nsparse;
    out->mid += s.groups_mid;
    out->dense += s.groups_dense;
    out->nonfinite += s.groups_nonfinite;
    out->unconverged += s.groups_unconverged;
    out->sweeps += s.alm_sweeps;
    out->objective += s.objective;
    return;
  }
#ifdef PS_WITH_CUDA
  if (w.device().is_cuda()) {
    CudaLaunchOptions opt;
    opt.algo = algo.value_or(kDefaultCudaProxAlgo);
    ProxCudaLaunch(w.data_ptr(), dtype, groups, lambda, p, out,
                   c10::cuda::getCurrentCUDAStream(w.device().index()).stream(), opt);
    return;
  }
#endif
  throw Error("prox: no implementation for device " + w.device().str() +
              (CudaCompiled() ? "" : " (this build has no CUDA)"));
}

ProxStats ReadStats(const torch::Tensor& stats) {
  const torch::Tensor h = stats.to(torch::kCPU).contiguous();
  DeviceStats d;
  std::memcpy(&d, h.data_ptr<int64_t>(), sizeof d);
  return ToProxStats(d);
}

ProxStats ProxInPlace(torch::Tensor& w, float lambda, NMPattern p) {
  CheckWeight(w, p);
  torch::Tensor stats = NewStatsBuffer(w.device());
  ProxInPlaceAccumulate(w, lambda, p, stats);
  const ProxStats s = ReadStats(stats);
  if (s.groups_nonfinite > 0)
    throw Error("prox: " + std::to_string(s.groups_nonfinite) + " of " + std::to_string(s.groups) +
                " groups contain NaN or Inf (left unchanged)");
  return s;
}

}  // namespace ps::prox

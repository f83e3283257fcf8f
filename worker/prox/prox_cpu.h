// The fast CPU prox: EnumALM (prox_group.h) on every group of M consecutive values of a raw
// buffer, in place, fp32 math on bf16/fp16/fp32 storage, threaded over chunks of groups.
// Torch-free; ProxInPlace (prox.h) is the LibTorch entry point.
#pragma once

#include <cstdint>

#include "common/dtype.h"
#include "common/nm_pattern.h"
#include "worker/prox/prox_algo.h"
#include "worker/prox/prox_stats.h"

namespace ps::prox {

// The patterns the fast paths (CPU and CUDA) are compiled for.
bool FastPathSupports(NMPattern p);

// Mantissa bits of a storage type (bf16 7, fp16 10, fp32 23); throws ps::Error for others.
int MantissaBits(DType dtype);

// Throws ps::Error unless lambda is finite and >= 0, dtype is F32/F16/BF16 and p is supported.
void ValidateProxArgs(float lambda, DType dtype, NMPattern p);

// How ProxCpu runs the groups: kBest takes kAvx2 where the CPU has AVX2 (groups of 4 run 8 at a
// time in lock step, prox_group_simd.h), else kScalar (the scalar code the CUDA kernel shares,
// prox_group.h). The paths give bit-identical results (tests compare them); naming one is for
// those tests and benches.
enum class CpuPath { kBest, kScalar, kAvx2 };
bool ProxCpuSupports(CpuPath path);
// The path kBest takes here, as text ("avx2" or "scalar").
const char* ProxCpuBestPath();

// Applies prox_{lambda Reg_{N:M}} to `groups` groups of p.m consecutive values at `data`.
// Groups holding a NaN/Inf are left unchanged and counted in groups_nonfinite (the caller decides
// how to fail). threads <= 0 means std::thread::hardware_concurrency(). algo picks the per-group
// solver (prox_algo.h; the default is the fastest); path as above (ps::Error if this CPU lacks
// it).
ProxStats ProxCpu(void* data, DType dtype, int64_t groups, float lambda, NMPattern p,
                  int threads = 0, ProxAlgo algo = kDefaultProxAlgo, CpuPath path = CpuPath::kBest);

}  // namespace ps::prox

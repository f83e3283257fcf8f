// The 2:4 decode product on the sparse tensor cores (sparse24_spmma.cu): y[M, N] = x[M, K] · Wᵀ
// for M <= kSpmmaMaxM with W in the mma.sp layout (mma_sp_layout.h), through
// mma.sp.m16n8k32 (bf16/fp16 in, fp32 accumulate). The weights are the instruction's sparse A
// operand (16 rows x 32 columns, stored 16 x 16 + metadata) and are read once, as stored, for all
// M tokens; the tokens are the B operand (n = 8 per instruction). No decompression.
//
// Raw pointers and the CUDA runtime only (no LibTorch), so nvcc checks it on any machine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "worker/sparse/sparse24_gemv.h"

namespace ps::sparse {

inline constexpr int kSpmmaMaxM = 32;
// Kernel variants (which one is fastest depends on M, the shape and the GPU, so the layer times
// them): 0: 2 row tiles per warp, 2 blocks per SM; 1: 1 row tile per warp, the next chunk
// prefetched, 2 blocks per SM; 2: 2 row tiles per warp, prefetched, 1 block per SM; 3: as 1, but
// the K slices of a row block are one thread block cluster that sums them in distributed shared
// memory (Hopper and later; at most 8 slices, so not for every K: SpmmaPlan::available); 4: as
// 1 at 3 blocks per SM.
inline constexpr int kSpmmaVariants = 5;

// How a launch splits the work: blocks of 256 weight rows (128 for variants 1, 3, 4; row_blocks)
// times `splits` slices of K. With splits > 1 each slice writes fp32 partial sums into `workspace`
// ([splits, M, N] floats) (16-byte aligned) and the last block of each row block to finish sums
// them in slice order (deterministic) and writes y; `counters` (Sparse24SpmmaCounters(N) unsigned
// ints) must be zero before the first launch, and each launch leaves them zero. One launch at a
// time per counters array (one stream). Variant 3 needs neither (workspace_floats is 0).
struct SpmmaPlan {
  int m = 0, n = 0, k = 0;
  int variant = 0;           // 0 .. kSpmmaVariants - 1
  int tiles_n = 1;           // tiles of 8 tokens (ceil(M / 8))
  int row_blocks = 0;        // ceil(N / rows per block)
  int splits = 1;            // slices of K, one per block along grid y
  int chunks_per_split = 1;  // 128-column chunks per slice
  int64_t workspace_floats = 0;
  bool available = true;  // false: this variant cannot run this shape on this GPU
};

// `sm_count`: the GPU's multiprocessors (the plan aims at the variant's blocks per SM). `splits` >
// 0 forces the number of K slices (clamped to what the shared memory and K allow); 0 chooses.
SpmmaPlan Sparse24SpmmaPlan(int M, int N, int K, int sm_count, int splits = 0, int variant = 0);
// The counters a weight with N rows needs, for any variant (the most row blocks).
int Sparse24SpmmaCounters(int N);

// The current device's multiprocessor count (looked up once per device).
int DeviceSmCount();

// x [M, K] and y [M, N] 16-bit row-major, K % 16 == 0, x 16-byte aligned; values/meta the mma.sp
// layout of W (16-byte aligned); plan from Sparse24SpmmaPlan(M, N, K, ...). cudaErrorInvalidValue
// for a shape or pointer it does not handle.
cudaError_t Sparse24Spmma(Elem elem, const void* x, const uint32_t* values, const uint32_t* meta,
                          void* y, const SpmmaPlan& plan, float* workspace, unsigned* counters,
                          cudaStream_t stream);

}  // namespace ps::sparse

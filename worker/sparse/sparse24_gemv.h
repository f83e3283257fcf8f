// Our own 2:4 kernel for decode-sized inputs: y[M, N] = x[M, K] · Wᵀ with M <= 16, reading W in
// the native packed layout of docs/artifacts.md (values [N, K/2] + 2-bit positions, 4 bits per
// group, [N, K/8] bytes). At these M the work is bound by reading the weights, and the packed
// layout is 9/16 of the dense bytes for 16-bit types, so up to ~1.78x over a dense GEMV.
//
// Raw pointers and the CUDA runtime only (no LibTorch), so nvcc checks it on any machine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "worker/sparse/elem16.h"

namespace ps::sparse {

inline constexpr int kDecodeMaxM = 16;
// The tensor-core kernel takes up to 32 rows per launch (four n = 8 tiles of tokens), so batched
// decode of up to 32 requests reads the weights once.
inline constexpr int kMmaMaxM = 32;
// (Up to 2 rows this kernel beats dense cuBLAS on the H100: 1.1-1.5x at M <= 2, 0.76x at M = 4;
// Sparse24Linear's kAutoGemvMaxM.)

// The shape and alignment rules below, shared by both decode kernels: true when they hold.
inline bool DecodeArgsValid(const void* x, const void* values, const uint8_t* meta, const void* y,
                            int M, int N, int K, int max_m = kDecodeMaxM) {
  auto aligned = [](const void* p, uintptr_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; };
  return M >= 1 && M <= max_m && N >= 1 && K >= 16 && K % 16 == 0 && aligned(x, 16) &&
         aligned(values, 16) && aligned(meta, 2) && aligned(y, 2);
}

// K must be a multiple of 16 and M in 1..kDecodeMaxM; all pointers device memory, row-major and
// contiguous; values and x 16-byte aligned. Returns the launch error (cudaErrorInvalidValue for a
// shape it does not handle).
cudaError_t Sparse24Gemv(Elem elem, const void* x, const void* values, const uint8_t* meta, void* y,
                         int M, int N, int K, cudaStream_t stream);

// The same product on tensor cores (sparse24_mma.cu): each weight group is decompressed once in
// registers into a dense mma.m16n8k16 fragment, so the weights are read once for all M <= 32
// tokens and the per-token cost is tensor-core math, not a select and an FMA per kept value.
// Same shapes and alignment rules as Sparse24Gemv, with M in 1..kMmaMaxM.
cudaError_t Sparse24GemmSmallM(Elem elem, const void* x, const void* values, const uint8_t* meta,
                               void* y, int M, int N, int K, cudaStream_t stream);

// Native layout -> dense [N, K] 16-bit weight (for prefill from the native form through dense
// cuBLAS when the cuSPARSELt form is not kept). K % 4 == 0; values 4-byte and dense 8-byte aligned.
cudaError_t Sparse24Unpack(const void* values, const uint8_t* meta, void* dense, int64_t N,
                           int64_t K, cudaStream_t stream);

}  // namespace ps::sparse

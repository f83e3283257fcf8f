// Our own 2:4 kernel for decode-sized inputs: y[M, N] = x[M, K] · Wᵀ with M <= 16, reading W in
// the native packed layout of docs/artifacts.md (values [N, K/2] + 2-bit positions, 4 bits per
// group, [N, K/8] bytes). At these M the work is bound by reading the weights, and the packed
// layout is 9/16 of the dense bytes for 16-bit types, so up to ~1.78x over a dense GEMV.
//
// Raw pointers and the CUDA runtime only (no LibTorch), so nvcc checks it on any machine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace ps::sparse {

enum class Elem { kBF16, kF16 };

inline constexpr int kDecodeMaxM = 16;
// Up to this many rows the kernel beats dense cuBLAS on the H100 (1.1-1.5x at M <= 2, 0.76x at
// M = 4; docs/sparse-inference.md). Sparse24Linear's automatic choice uses it below cuSPARSELt.
inline constexpr int kDecodeAutoMaxM = 2;

// K must be a multiple of 16 and M in 1..kDecodeMaxM; all pointers device memory, row-major and
// contiguous; values and x 16-byte aligned. Returns the launch error (cudaErrorInvalidValue for a
// shape it does not handle).
cudaError_t Sparse24Gemv(Elem elem, const void* x, const void* values, const uint8_t* meta, void* y,
                         int M, int N, int K, cudaStream_t stream);

}  // namespace ps::sparse

// Attention of one decode step on the GPU: every row (request) has one query token at its own
// position and reads its keys and values straight from the server's KV pool (kv_cache.h), only
// the positions it may see: keys 0..pos (and, with a window w, only those > pos - w). What
// at::scaled_dot_product_attention computes with the batched mask, without reading the masked
// positions or padding them.
//
// Split over keys (flash-decoding): a block of 4 warps takes one (row, head) and one slice of
// keys; each group of 4 lanes reads one key row (16-byte loads, a warp reads 8 consecutive rows
// at a time), keeps a running max, sum and weighted sum of values in fp32 (base-2 exponentials,
// the 1/sqrt(d) scale folded into q), and the block's 32 groups are merged through shared memory
// into one partial per slice. A second kernel merges the slices and writes the output in the
// input's dtype. NaN in a query or a key the row sees gives NaN, as the reference does.
//
// Raw pointers and the CUDA runtime only (no LibTorch), so nvcc checks it on any machine.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "worker/sparse/elem16.h"

namespace ps::serve {

using sparse::Elem;  // bf16 or fp16

struct DecodeAttentionShape {
  int rows = 0;                   // requests in the step; row i reads slot i of the pool
  int q_heads = 0, kv_heads = 0;  // q_heads % kv_heads == 0 (grouped-query attention)
  int head_dim = 0;               // 64 or 128
  int max_keys = 0;               // no row sees more keys (pos + 1 <= max_keys): fixes the grid
  int window = 0;                 // sliding window, 0 for none
  // Pool strides in elements: [slot][kv head][position][head_dim], positions contiguous rows.
  int64_t slot_stride = 0, head_stride = 0;
};

struct DecodeAttentionPlan {
  int splits = 1;          // key slices per (row, head), one block each
  int keys_per_split = 0;  // a multiple of 32
  size_t workspace_floats = 0;
};

// Whether the kernel handles this shape (head_dim 64 or 128, heads divisible, sizes positive).
bool DecodeAttentionSupports(const DecodeAttentionShape& s);
// Enough blocks to fill `sm_count` multiprocessors a few times over, at most one slice per 32
// keys.
DecodeAttentionPlan PlanDecodeAttention(const DecodeAttentionShape& s, int sm_count);

// q, out: [rows, q_heads, head_dim] contiguous 16-bit; k, v: the pool (16-byte aligned);
// positions: rows int64 on the device; workspace: plan.workspace_floats floats.
// cudaErrorInvalidValue for a shape or pointer it does not handle.
cudaError_t DecodeAttention(Elem elem, const DecodeAttentionShape& shape,
                            const DecodeAttentionPlan& plan, const void* q, const void* k,
                            const void* v, const int64_t* positions, void* out, float* workspace,
                            cudaStream_t stream);

}  // namespace ps::serve

// Decode-step attention kernels (see decode_attention.h).
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "worker/serve/decode_attention.h"

namespace ps::serve {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kGroups = kWarps * 8;  // groups of 4 lanes in a block: one key row each per step
constexpr int kKeysPerStep = kGroups;

// The 8 elements of a 16-byte load, as floats.
template <Elem E>
__device__ __forceinline__ void Unpack8(const uint4& u, float (&f)[8]) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    if constexpr (E == Elem::kBF16) {
      f[2 * i] = __uint_as_float(w[i] << 16);
      f[2 * i + 1] = __uint_as_float(w[i] & 0xFFFF0000u);
    } else {
      const float2 h = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
      f[2 * i] = h.x;
      f[2 * i + 1] = h.y;
    }
  }
}

// Partial of one (slice, head, row): grid (splits, q_heads, rows). Lane 4g + t of a warp reads
// elements 32r + 8t .. 32r + 8t + 7 (r < D / 32) of key row `g` of the warp's 8 rows per step and
// keeps the same elements of its running output. Writes [D] weighted sum, max, sum (base 2) at
// part + ((row · q_heads + head) · splits + slice) · (D + 2); an empty slice writes max -inf and
// zeros.
template <Elem E, int D>
__global__ void __launch_bounds__(kThreads)
    DecodeAttentionPartial(const uint16_t* __restrict__ q, const uint16_t* __restrict__ k,
                           const uint16_t* __restrict__ v, const int64_t* __restrict__ positions,
                           float* __restrict__ part, int q_heads, int group, int64_t slot_stride,
                           int64_t head_stride, int keys_per_split, int window, float q_scale) {
  constexpr int kLoads = D / 32;     // 16-byte loads per lane per key row
  constexpr int kDims = kLoads * 8;  // elements per lane
  __shared__ float s_m[kGroups], s_l[kGroups], s_w[kGroups];
  __shared__ float s_acc[kGroups][D + 1];
  const int split = blockIdx.x, head = blockIdx.y, row = blockIdx.z, splits = gridDim.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int gi = warp * 8 + g;  // the lane's group in the block

  const int64_t pos = positions[row];
  const int64_t key_end = pos + 1;
  const int64_t key_begin = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0;
  const int64_t slice0 = static_cast<int64_t>(split) * keys_per_split;
  const int64_t k0 = key_begin > slice0 ? key_begin : slice0;
  const int64_t k1 = key_end < slice0 + keys_per_split ? key_end : slice0 + keys_per_split;

  float qf[kDims];
  const uint16_t* qrow = q + (static_cast<size_t>(row) * q_heads + head) * D;
#pragma unroll
  for (int r = 0; r < kLoads; ++r) {
    float f[8];
    Unpack8<E>(*reinterpret_cast<const uint4*>(qrow + 32 * r + 8 * t), f);
#pragma unroll
    for (int e = 0; e < 8; ++e) qf[8 * r + e] = f[e] * q_scale;
  }
  const size_t base = static_cast<size_t>(row) * slot_stride +
                      static_cast<size_t>(head / group) * head_stride + 8 * t;
  const uint16_t* kb = k + base;
  const uint16_t* vb = v + base;

  float m = -INFINITY, l = 0.f, acc[kDims];
  bool nan_seen = false;
#pragma unroll
  for (int d = 0; d < kDims; ++d) acc[d] = 0.f;
  // k0, k1 are the same for the whole block, so every lane runs the same steps (the shuffles
  // below need all 32).
  for (int64_t step = k0; step < k1; step += kKeysPerStep) {
    const int64_t j = step + gi;
    const bool valid = j < k1;
    uint4 kr[kLoads], vr[kLoads];
#pragma unroll
    for (int r = 0; r < kLoads; ++r) {
      kr[r] = valid ? __ldg(reinterpret_cast<const uint4*>(kb + j * D + 32 * r))
                    : make_uint4(0, 0, 0, 0);
      vr[r] = valid ? __ldg(reinterpret_cast<const uint4*>(vb + j * D + 32 * r))
                    : make_uint4(0, 0, 0, 0);
    }
    float s = 0.f;
#pragma unroll
    for (int r = 0; r < kLoads; ++r) {
      float f[8];
      Unpack8<E>(kr[r], f);
#pragma unroll
      for (int e = 0; e < 8; ++e) s = fmaf(qf[8 * r + e], f[e], s);
    }
    s += __shfl_xor_sync(0xFFFFFFFFu, s, 1);
    s += __shfl_xor_sync(0xFFFFFFFFu, s, 2);
    // A key scored -inf weighs 0 (and would make exp2(-inf - -inf) a NaN); a NaN score makes
    // the whole output NaN (below), as the reference's softmax does.
    if (!valid || s == -INFINITY) continue;
    if (s != s) {
      nan_seen = true;
      continue;
    }
    const float m_new = fmaxf(m, s);
    const float corr = m_new == m ? 1.f : exp2f(m - m_new);
    const float p = exp2f(s - m_new);
    l = fmaf(l, corr, p);
#pragma unroll
    for (int r = 0; r < kLoads; ++r) {
      float f[8];
      Unpack8<E>(vr[r], f);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[8 * r + e] = fmaf(acc[8 * r + e], corr, p * f[e]);
    }
    m = m_new;
  }

  // Merge the block's 32 groups.
  if (t == 0) {
    s_m[gi] = m;
    s_l[gi] = l;
  }
#pragma unroll
  for (int r = 0; r < kLoads; ++r)
#pragma unroll
    for (int e = 0; e < 8; ++e) s_acc[gi][32 * r + 8 * t + e] = acc[8 * r + e];
  const bool nan_block = __syncthreads_or(nan_seen);
  float* out = part + ((static_cast<size_t>(row) * q_heads + head) * splits + split) * (D + 2);
  if (nan_block) {  // every merged value NaN, whatever the other slices hold
    for (int d = threadIdx.x; d < D + 2; d += blockDim.x) out[d] = NAN;
    return;
  }
  float mb = -INFINITY;
  for (int i = 0; i < kGroups; ++i) mb = fmaxf(mb, s_m[i]);
  if (mb == -INFINITY) {  // no key of this slice counts
    for (int d = threadIdx.x; d < D + 2; d += blockDim.x) out[d] = d == D ? -INFINITY : 0.f;
    return;
  }
  if (threadIdx.x < kGroups) s_w[threadIdx.x] = exp2f(s_m[threadIdx.x] - mb);  // -inf: 0
  __syncthreads();
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float o = 0.f;
    for (int i = 0; i < kGroups; ++i) o = fmaf(s_acc[i][d], s_w[i], o);
    out[d] = o;
  }
  if (threadIdx.x == 0) {
    float lb = 0.f;
    for (int i = 0; i < kGroups; ++i) lb = fmaf(s_l[i], s_w[i], lb);
    out[D] = mb;
    out[D + 1] = lb;
  }
}

// Merge the slices of one (row, head): grid (q_heads, rows), D threads.
template <Elem E, int D>
__global__ void __launch_bounds__(D)
    DecodeAttentionMerge(const float* __restrict__ part, uint16_t* __restrict__ out, int q_heads,
                         int splits) {
  const int head = blockIdx.x, row = blockIdx.y, d = threadIdx.x;
  const float* p = part + (static_cast<size_t>(row) * q_heads + head) * splits * (D + 2);
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = fmaxf(mx, p[s * (D + 2) + D]);
  float o = 0.f, l = 0.f;
  for (int s = 0; s < splits; ++s) {
    const float w = exp2f(p[s * (D + 2) + D] - mx);  // empty slice: exp2(-inf) = 0; NaN stays
    o += p[s * (D + 2) + d] * w;
    l += p[s * (D + 2) + D + 1] * w;
  }
  out[(static_cast<size_t>(row) * q_heads + head) * D + d] = sparse::FromFloat<E>(o / l);
}

template <Elem E, int D>
cudaError_t Launch(const DecodeAttentionShape& s, const DecodeAttentionPlan& p, const void* q,
                   const void* k, const void* v, const int64_t* positions, void* out,
                   float* workspace, cudaStream_t stream) {
  constexpr double kLog2E = 1.4426950408889634;  // exp(x) = exp2(x · log2 e)
  const float q_scale = static_cast<float>(kLog2E / std::sqrt(static_cast<double>(D)));
  DecodeAttentionPartial<E, D><<<dim3(p.splits, s.q_heads, s.rows), kThreads, 0, stream>>>(
      static_cast<const uint16_t*>(q), static_cast<const uint16_t*>(k),
      static_cast<const uint16_t*>(v), positions, workspace, s.q_heads, s.q_heads / s.kv_heads,
      s.slot_stride, s.head_stride, p.keys_per_split, s.window, q_scale);
  DecodeAttentionMerge<E, D><<<dim3(s.q_heads, s.rows), D, 0, stream>>>(
      workspace, static_cast<uint16_t*>(out), s.q_heads, p.splits);
  return cudaGetLastError();
}

}  // namespace

bool DecodeAttentionSupports(const DecodeAttentionShape& s) {
  return (s.head_dim == 64 || s.head_dim == 128) && s.rows > 0 && s.q_heads > 0 && s.kv_heads > 0 &&
         s.q_heads % s.kv_heads == 0 && s.max_keys > 0 && s.window >= 0 && s.slot_stride % 8 == 0 &&
         s.head_stride % 8 == 0;
}

DecodeAttentionPlan PlanDecodeAttention(const DecodeAttentionShape& s, int sm_count) {
  DecodeAttentionPlan p;
  const int64_t heads = static_cast<int64_t>(s.rows) * s.q_heads;
  const int most = std::max(1, (s.max_keys + kKeysPerStep - 1) / kKeysPerStep);
  // About 8 blocks per multiprocessor in all, and at least one slice per 256 keys.
  const int64_t want = std::max<int64_t>((8LL * std::max(sm_count, 1) + heads - 1) / heads,
                                         (s.max_keys + 255) / 256);
  const int splits = static_cast<int>(std::clamp<int64_t>(want, 1, most));
  const int steps = (most + splits - 1) / splits;
  p.keys_per_split = steps * kKeysPerStep;
  p.splits = (s.max_keys + p.keys_per_split - 1) / p.keys_per_split;  // no slice past max_keys
  p.workspace_floats = static_cast<size_t>(heads) * p.splits * (s.head_dim + 2);
  return p;
}

cudaError_t DecodeAttention(Elem elem, const DecodeAttentionShape& shape,
                            const DecodeAttentionPlan& plan, const void* q, const void* k,
                            const void* v, const int64_t* positions, void* out, float* workspace,
                            cudaStream_t stream) {
  auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (!DecodeAttentionSupports(shape) || plan.splits < 1 || plan.keys_per_split < 1 ||
      !aligned(q) || !aligned(k) || !aligned(v) || !aligned(out) || positions == nullptr ||
      workspace == nullptr)
    return cudaErrorInvalidValue;
  const bool bf16 = elem == Elem::kBF16;
  if (shape.head_dim == 64)
    return bf16 ? Launch<Elem::kBF16, 64>(shape, plan, q, k, v, positions, out, workspace, stream)
                : Launch<Elem::kF16, 64>(shape, plan, q, k, v, positions, out, workspace, stream);
  return bf16 ? Launch<Elem::kBF16, 128>(shape, plan, q, k, v, positions, out, workspace, stream)
              : Launch<Elem::kF16, 128>(shape, plan, q, k, v, positions, out, workspace, stream);
}

}  // namespace ps::serve

// EnumALM for ONE group of M weights, in fp32: the arithmetic shared verbatim by the CPU fast path
// (prox_cpu.cc) and the CUDA kernel (prox_cuda.cu), so the CPU tests exercise exactly what the GPU
// runs. Straight-line code over compile-time N and M (everything stays in registers on the GPU:
// no runtime-indexed arrays, sorting and unsorting are done by rank selection).
//
// The problem (eq. 6 of the ProxSparse paper, generalised to N:M): for a group y,
//     w* = argmin_w 1/2 ||w - y||^2 + lambda * Reg(w),   Reg(w) = e_{N+1}(|w_1|, ..., |w_M|),
// where e_d is the elementary symmetric polynomial of degree d (2:4: the sum of the products of
// all triples, eq. 4; 1:4: the sum of |w_i||w_j| over pairs). Reg(w) = 0 iff w is N:M sparse.
// Theorem 4 reduces it to z = |y| sorted descending and a few candidates: the N-sparse top-N of z,
// and for k = N+1..M the k-sparse critical point found by alternating minimisation (Algorithm 2:
// coordinate-wise soft thresholding w_i <- max(z_i - lambda * e_N(w_others), 0) on the first k
// coordinates). The lowest objective wins; the result is unsorted and the signs restored.
//
// Differences from the official PyTorch code, each deliberate:
//  * every group stops on its own (max coordinate change <= kAlmRelTol * z_1) instead of a fixed
//    100 iterations with one global test;
//  * the group is scaled by a power of two s (exact) so that z_1 is in [0.5, 1) before the
//    arithmetic (lambda becomes lambda * s^(N-1), which leaves the problem unchanged): huge
//    (1e30) and denormal weights neither overflow nor lose precision in fp32, and the tolerance
//    is relative;
//  * candidates whose last coordinate is provably zero at every fixed point are skipped (cheap
//    interval bound, see SkipCandidate) -- they would reproduce a sparser candidate;
//  * non-finite inputs are reported (GroupOutcome::finite) and the group is left unchanged.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define PS_HD __host__ __device__ __forceinline__
#else
#define PS_HD inline __attribute__((always_inline))
#endif
#if defined(__CUDA_ARCH__)
#define PS_UNROLL _Pragma("unroll")
#elif defined(__CUDACC__)
#define PS_UNROLL  // host side of a .cu: never runs the group code
#else
#define PS_UNROLL _Pragma("GCC unroll 16")
#endif

namespace ps::prox {

// ALM stops when the estimated distance to its limit is at most rel_tol * z_1 (z_1 is scaled into
// [0.5, 1)), or after kMaxAlmSweeps sweeps. AlmRelTolFor(bits) is the tolerance for a storage type
// with that many mantissa bits (bf16 7, fp16 10, fp32 23): 2^-(bits+8), at most 2^-23, i.e. far
// below the rounding of the stored result (the objective is stationary at the solution, so its
// error is second order in the distance).
inline constexpr int kMaxAlmSweeps = 100;
PS_HD constexpr float AlmRelTolFor(int mantissa_bits) {
  const int k = mantissa_bits + 8 < 23 ? mantissa_bits + 8 : 23;
  float t = 1.0f;
  for (int i = 0; i < k; ++i) t *= 0.5f;
  return t;
}

// Which candidate won (index 0: the N-sparse top-N; k - N: the k-sparse ALM solution).
struct GroupOutcome {
  bool finite = true;     // false: the group had a NaN/Inf and was left unchanged
  bool converged = true;  // false: some ALM candidate hit kMaxAlmSweeps
  int winner = 0;         // 0: top-N, else k - N for the k-sparse candidate
  int sweeps = 0;         // ALM sweeps run in total (all candidates)
  double objective = 0;   // 1/2 ||w - y||^2 + lambda * Reg(w) in the input's units
};

namespace detail {

PS_HD uint32_t FloatBits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

PS_HD float BitsFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

PS_HD bool IsFinite(float f) { return (FloatBits(f) & 0x7f800000u) != 0x7f800000u; }
PS_HD float Abs(float f) { return BitsFloat(FloatBits(f) & 0x7fffffffu); }
PS_HD float Max(float a, float b) { return a > b ? a : b; }
// 2^e as a float, for -126 <= e <= 127 (always a normal number, so scaling by it is exact).
PS_HD float Pow2(int e) { return BitsFloat(static_cast<uint32_t>(e + 127) << 23); }

// e_D(w_0..w_{K-1} without w_skip); skip = -1 excludes nothing. With the loops unrolled and skip a
// constant, the comparisons fold away.
template <int D, int K, int M>
PS_HD float ElemSym(const float (&w)[M], int skip) {
  static_assert(D >= 1 && K <= M);
  float e[D + 1];
  e[0] = 1.0f;
  PS_UNROLL
  for (int d = 1; d <= D; ++d) e[d] = 0.0f;
  PS_UNROLL
  for (int j = 0; j < K; ++j) {
    if (j == skip) continue;
    PS_UNROLL
    for (int d = D; d >= 1; --d) e[d] += w[j] * e[d - 1];
  }
  return e[D];
}

// True if the K-sparse candidate cannot have its K-th coordinate non-zero at any fixed point of
// ALM, so it would only reproduce a sparser candidate. At a fixed point 0 <= w_i <= v_i and, as
// e_N is increasing in each argument, w_i >= l_i := max(v_i - lam * e_N(v_others), 0); hence
// w_K <= max(v_K - lam * e_N(l_others), 0).
template <int N, int K, int M>
PS_HD bool SkipCandidate(const float (&v)[M], float lam) {
  float l[M];
  PS_UNROLL
  for (int i = 0; i < M; ++i) l[i] = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K - 1; ++i) l[i] = Max(v[i] - lam * ElemSym<N, K, M>(v, i), 0.0f);
  return v[K - 1] - lam * ElemSym<N, K - 1, M>(l, -1) <= 0.0f;
}

// The best point c * v on the ray through v (coordinates 1..K): minimises
// 1/2 (1 - c)^2 S + lam c^(N+1) E over c >= 0, with S = sum v_i^2, E = e_{N+1}(v), i.e. solves
// (N+1) lam E c^N + S c - S = 0 (closed form for N <= 2, Newton from c = 1 otherwise: the left
// side is convex and increasing on c >= 0, so Newton from the right converges monotonically).
template <int N, int K, int M>
PS_HD float RayScale(const float (&v)[M], float lam) {
  float sq = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K; ++i) sq += v[i] * v[i];
  const float a = (N + 1) * lam * ElemSym<N + 1, K, M>(v, -1);
  if constexpr (N == 1) {
    return sq / (sq + a);
  } else if constexpr (N == 2) {
    return 2.0f * sq / (sq + sqrtf(sq * sq + 4.0f * a * sq));
  } else {
    float c = 1.0f;
    PS_UNROLL
    for (int it = 0; it < 8; ++it) {
      float cn1 = 1.0f;  // c^(N-1)
      PS_UNROLL
      for (int j = 0; j < N - 1; ++j) cn1 *= c;
      c -= (a * cn1 * c + sq * c - sq) / (N * a * cn1 + sq);
    }
    return c;
  }
}

// ALM (Algorithm 2) on the first K coordinates of v, sweeping i = 1..K, but started from the best
// point on the ray c * v instead of v itself: from v, the first sweep sees every other coordinate
// at full size and, when the coupling lam * v is strong, thresholds the largest coordinates to 0,
// landing on a boundary fixed point and missing the interior minimum (e.g. near-tied groups; the
// brute-force test finds these). Returns the candidate's objective (scaled units); w receives the
// point, sweeps the number of sweeps run.
template <int N, int K, int M>
PS_HD float AlmCandidate(const float (&v)[M], float lam, float tol, float tail, float (&w)[M],
                         int& sweeps) {
  const float c = RayScale<N, K, M>(v, lam);
  PS_UNROLL
  for (int i = 0; i < M; ++i) w[i] = i < K ? c * v[i] : 0.0f;
  int s = 0;
  float prev = 0.0f;
  while (true) {
    float delta = 0.0f;
    PS_UNROLL
    for (int i = 0; i < K; ++i) {
      const float nw = Max(v[i] - lam * ElemSym<N, K, M>(w, i), 0.0f);
      delta = Max(delta, Abs(nw - w[i]));
      w[i] = nw;
    }
    ++s;
    // Stop when the change is below tol, or when the remaining distance predicted from linear
    // convergence (ratio r = delta / prev: delta * r / (1 - r)) is.
    if (delta <= tol || delta * delta <= tol * (prev - delta) || s >= kMaxAlmSweeps) break;
    prev = delta;
  }
  sweeps = s;
  float sq = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K; ++i) sq += (w[i] - v[i]) * (w[i] - v[i]);
  return 0.5f * sq + tail + lam * ElemSym<N + 1, K, M>(w, -1);
}

// Tries the K-sparse candidate and keeps it if its objective is lower; then K + 1, up to M.
template <int N, int K, int M>
PS_HD void TryCandidates(const float (&v)[M], float lam, float tol, const float (&tail)[M + 1],
                         float (&best)[M], float& best_obj, GroupOutcome& out) {
  if constexpr (K <= M) {
    // v is sorted: v_K == 0 means every candidate from K on equals a sparser one.
    if (v[K - 1] <= 0.0f) return;
    if (!SkipCandidate<N, K, M>(v, lam)) {
      float w[M];
      int sweeps = 0;
      const float obj = AlmCandidate<N, K, M>(v, lam, tol, tail[K], w, sweeps);
      out.sweeps += sweeps;
      if (sweeps >= kMaxAlmSweeps) out.converged = false;
      if (obj < best_obj) {
        best_obj = obj;
        out.winner = K - N;
        PS_UNROLL
        for (int i = 0; i < M; ++i) best[i] = w[i];
      }
    }
    TryCandidates<N, K + 1, M>(v, lam, tol, tail, best, best_obj, out);
  }
}

}  // namespace detail

// Replaces y (one group, as floats) by prox_{lambda Reg_{N:M}}(y). lambda must be finite and
// >= 0 (the callers check). A group with a NaN/Inf is left unchanged and reported.
template <int N, int M>
PS_HD GroupOutcome ProxGroup(float (&y)[M], float lambda, float rel_tol) {
  static_assert(1 <= N && N < M && M <= 8, "N:M needs 1 <= N < M <= 8");
  using namespace detail;
  GroupOutcome out;
  bool finite = true;
  PS_UNROLL
  for (int i = 0; i < M; ++i) finite = finite && IsFinite(y[i]);
  if (!finite) {
    out.finite = false;
    return out;
  }
  // Rank of each coordinate in descending |y| (ties: lower index first), then the sorted z.
  float z[M];
  int rank[M];
  PS_UNROLL
  for (int i = 0; i < M; ++i) z[i] = Abs(y[i]);
  PS_UNROLL
  for (int i = 0; i < M; ++i) {
    int r = 0;
    PS_UNROLL
    for (int j = 0; j < M; ++j) r += (z[j] > z[i] || (z[j] == z[i] && j < i)) ? 1 : 0;
    rank[i] = r;
  }
  float zmax = 0.0f;
  PS_UNROLL
  for (int i = 0; i < M; ++i) zmax = Max(zmax, z[i]);
  if (zmax == 0.0f) return out;  // all zeros: already sparse, objective 0

  // Power-of-two scale: z_1 * 2^-e in [0.5, 1) (exponent clamped so both factors are normal).
  int e = static_cast<int>((FloatBits(zmax) >> 23) & 0xff) - 126;
  e = e < -126 ? -126 : (e > 126 ? 126 : e);
  const float down = Pow2(-e), up = Pow2(e);
  float v[M];
  PS_UNROLL
  for (int k = 0; k < M; ++k) {
    float s = 0.0f;
    PS_UNROLL
    for (int i = 0; i < M; ++i) s = rank[i] == k ? z[i] : s;
    v[k] = s * down;
  }
  // lambda * s^(N-1), saturated: a huge lambda only ever selects the top-N candidate.
  float lam = lambda;
  PS_UNROLL
  for (int j = 0; j < N - 1; ++j) lam = lam * up;
  if (!(lam <= 3.0e38f)) lam = 3.0e38f;

  // tail[k] = 1/2 sum_{i >= k} v_i^2: the part of the objective from coordinates set to zero.
  float tail[M + 1];
  tail[M] = 0.0f;
  PS_UNROLL
  for (int k = M - 1; k >= 0; --k) tail[k] = tail[k + 1] + 0.5f * v[k] * v[k];

  float best[M];
  PS_UNROLL
  for (int i = 0; i < M; ++i) best[i] = i < N ? v[i] : 0.0f;
  float best_obj = tail[N];
  if (best_obj > 0.0f) {
    TryCandidates<N, N + 1, M>(v, lam, rel_tol * v[0], tail, best, best_obj, out);
  }
  // Unsort, unscale, restore signs; pruned weights become +0.
  PS_UNROLL
  for (int i = 0; i < M; ++i) {
    float b = 0.0f;
    PS_UNROLL
    for (int k = 0; k < M; ++k) b = rank[i] == k ? best[k] : b;
    const float mag = b * up;
    y[i] = b > 0.0f ? (y[i] < 0.0f ? -mag : mag) : 0.0f;
  }
  const double s = static_cast<double>(up);
  out.objective = static_cast<double>(best_obj) * s * s;
  return out;
}

}  // namespace ps::prox

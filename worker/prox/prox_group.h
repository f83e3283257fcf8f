// EnumALM for ONE group of M weights, in fp32: the arithmetic shared verbatim by the CPU fast path
// (prox_cpu.cc) and the CUDA kernel (prox_cuda.cu), so the CPU tests exercise exactly what the GPU
// runs. Straight-line code over compile-time N and M (everything stays in registers on the GPU:
// no runtime-indexed arrays; sorting is a compare-exchange network whose swaps are replayed in
// reverse to unsort).
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
//  * every group stops on its own (max coordinate change <= kAlmRelTol * z_1, and for fp32 also
//    within ~1e-8 of the candidate's objective: kPolishObjectiveRel) instead of a fixed 100
//    iterations with one global test;
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

#include "worker/prox/prox_algo.h"

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
// [0.5, 1)). AlmRelTolFor(bits) is the tolerance for a storage type with that many mantissa bits
// (bf16 7, fp16 10, fp32 23): 2^-(bits+8), at most 2^-23, i.e. far below the rounding of the
// stored result (the objective is stationary at the solution, so its error is second order in the
// distance).
PS_HD constexpr float AlmRelTolFor(int mantissa_bits) {
  const int k = mantissa_bits + 8 < 23 ? mantissa_bits + 8 : 23;
  float t = 1.0f;
  for (int i = 0; i < k; ++i) t *= 0.5f;
  return t;
}

// Every candidate runs until it meets the stopping rule. A candidate still running after
// kForceNewtonAfter iterations is one whose minimum is nearly degenerate (ALM's rate near 1); from
// then on Newton is tried whatever the ProxAlgo (ALM alone needed up to ~8,500 sweeps at lambda =
// 25 on fp32 Llama-scale groups, ALM + Newton at most ~1,200). kMaxIterations is a safety stop that
// no tested group reaches; a group that does is counted unconverged (ProxStats), and the tests
// and the GPU check require that count to be 0. (The first release stopped every candidate at
// 100 iterations; GroupLimits::max_iterations = 100 reproduces it for the bench's comparison.)
inline constexpr int kForceNewtonAfter = 100;
// fp32 arithmetic resolves a limit only to a few ulps (times the conditioning of the face's
// Hessian): near a nearly singular minimum the sweeps' change or Newton's step can stall above
// the tolerance for ever (seen on near-tied groups at lambda = 2: Newton steps of 6 tol repeating).
// A change or step at most kNoiseFloor (64 ulps of z_1 in [0.5, 1), scaled units) that no longer
// shrinks is that noise, and the candidate has arrived (the objective's error is second order:
// ~1e-10 relative).
inline constexpr float kNoiseFloor = 1.0f / 131072.0f;  // 2^-17
inline constexpr int kMaxIterations = 100000;
inline constexpr int kFirstReleaseMaxIterations = 100;

// Run-time limits of one group's solve.
struct GroupLimits {
  // > 0: a group that would need more iterations (all candidates together) is left unchanged and
  // marked deferred, to be run again without a budget (the CUDA kernel's second pass: a few slow
  // groups then do not hold every warp). The result of a group that is not deferred is the same as
  // without a budget.
  int budget = 0;
  int max_iterations = kMaxIterations;
  // 2:4's closed forms (NoInteriorMinimum24, SolveLine24). Off only to rerun the first release's
  // algorithm in the bench (with max_iterations = kFirstReleaseMaxIterations).
  bool closed_forms = true;
};

// Which candidate won (index 0: the N-sparse top-N; k - N: the k-sparse candidate).
struct GroupOutcome {
  bool finite = true;     // false: the group had a NaN/Inf and was left unchanged
  bool converged = true;  // false: some candidate hit GroupLimits::max_iterations
  int winner = 0;         // 0: top-N, else k - N for the k-sparse candidate
  int sweeps = 0;         // iterations run in total (ALM sweeps + Newton steps, all candidates)
  bool deferred = false;  // the iteration budget ran out: y is unchanged, run it again without
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
PS_HD float Min(float a, float b) { return a < b ? a : b; }
// 2^e as a float, for -126 <= e <= 127 (always a normal number, so scaling by it is exact).
PS_HD float Pow2(int e) { return BitsFloat(static_cast<uint32_t>(e + 127) << 23); }

// e_D(w_0..w_{K-1} without w_skip and w_skip2); -1 excludes nothing. With the loops unrolled and
// the skips constants, the comparisons fold away. T is float here and a vector of lanes in
// prox_group_simd.h (zero-initialised; a vector plus the scalar 1 is 1 in every lane), so
// both paths run the same operations in the same order.
template <int D, int K, int M, typename T>
PS_HD T ElemSym(const T (&w)[M], int skip, int skip2 = -1) {
  static_assert(D >= 0 && K <= M);
  const T zero = {};
  if constexpr (D == 0) {
    return zero + 1.0f;
  } else {
    T e[D + 1];
    e[0] = zero + 1.0f;
    PS_UNROLL
    for (int d = 1; d <= D; ++d) e[d] = zero;
    PS_UNROLL
    for (int j = 0; j < K; ++j) {
      if (j == skip || j == skip2) continue;
      PS_UNROLL
      for (int d = D; d >= 1; --d) e[d] += w[j] * e[d - 1];
    }
    return e[D];
  }
}

// What the solver did, for a cost model (bench/prox_work_model.h): each call names the piece and
// its compile-time N and K. The product passes NoTrace, whose calls compile to nothing.
struct NoTrace {
  PS_HD void Base(int /*m*/) {}
  PS_HD void Skip(int /*n*/, int /*k*/) {}
  PS_HD void Ray(int /*n*/, int /*k*/) {}
  PS_HD void Sweep(int /*n*/, int /*k*/) {}
  PS_HD void Newton(int /*n*/, int /*k*/) {}
  PS_HD void Objective(int /*n*/, int /*k*/) {}
  PS_HD void Bound(int /*n*/, int /*k*/) {}
  PS_HD void Chord(int /*k*/) {}
  PS_HD void LineStep() {}       // one step of SolveLine24 (counted as an iteration)
  PS_HD void LineStart() {}      // SolveLine24's start (two square roots, a divide)
  PS_HD void NoMinimumTest() {}  // NoInteriorMinimum24's square root
};

// Sorting networks of compare-exchanges (Lo(c), Hi(c)), Lo < Hi: 5 for M = 4, Batcher's 19 for
// M = 8. With the exchange "swap when Hi's value is larger, or equal with a lower original index"
// the result is the stable descending order (ties: lower index first), checked exhaustively on
// small-integer inputs, the same order the SIMD path's rank counting gives.
template <int M>
PS_HD constexpr int SortNetSize() {
  static_assert(M == 4 || M == 8, "sorting networks exist for M = 4 and 8");
  return M == 4 ? 5 : 19;
}
template <int M>
PS_HD constexpr int SortNetLo(int c) {
  constexpr int k4[5] = {0, 2, 0, 1, 1};
  constexpr int k8[19] = {0, 2, 4, 6, 0, 1, 4, 5, 1, 5, 0, 3, 1, 2, 1, 3, 2, 3, 3};
  return M == 4 ? k4[c] : k8[c];
}
template <int M>
PS_HD constexpr int SortNetHi(int c) {
  constexpr int k4[5] = {1, 3, 2, 3, 2};
  constexpr int k8[19] = {1, 3, 5, 7, 2, 3, 6, 7, 2, 6, 4, 7, 5, 6, 4, 6, 4, 5, 4};
  return M == 4 ? k4[c] : k8[c];
}

// Exchanges C.. of the network on v (carrying the original indices idx for the tie rule),
// recording in swapped[c] whether exchange c swapped; then the reverse replay on x.
template <int M, int C = 0>
PS_HD void SortDescending(float (&v)[M], int (&idx)[M], bool (&swapped)[SortNetSize<M>()]) {
  if constexpr (C < SortNetSize<M>()) {
    constexpr int lo = SortNetLo<M>(C), hi = SortNetHi<M>(C);
    const bool s = v[hi] > v[lo] || (v[hi] == v[lo] && idx[hi] < idx[lo]);
    swapped[C] = s;
    const float vl = v[lo], vh = v[hi];
    const int il = idx[lo], ih = idx[hi];
    v[lo] = s ? vh : vl;
    v[hi] = s ? vl : vh;
    idx[lo] = s ? ih : il;
    idx[hi] = s ? il : ih;
    SortDescending<M, C + 1>(v, idx, swapped);
  }
}
template <int M, int C = SortNetSize<M>() - 1>
PS_HD void Unsort(float (&x)[M], const bool (&swapped)[SortNetSize<M>()]) {
  if constexpr (C >= 0) {
    constexpr int lo = SortNetLo<M>(C), hi = SortNetHi<M>(C);
    const float xl = x[lo], xh = x[hi];
    x[lo] = swapped[C] ? xh : xl;
    x[hi] = swapped[C] ? xl : xh;
    Unsort<M, C - 1>(x, swapped);
  }
}

// Interval bounds on every fixed point of ALM on the first K coordinates (a fixed point has
// w_i = max(v_i - lam e_N(w_others), 0); e_N is increasing in each argument, so 0 <= w <= v gives
// w_i >= l_i := max(v_i - lam e_N(v_others), 0), which gives w_i <= u_i := max(v_i - lam
// e_N(l_others), 0)).
template <int N, int K, int M>
PS_HD void FixedPointLowerBounds(const float (&v)[M], float lam, float (&l)[M]) {
  PS_UNROLL
  for (int i = 0; i < M; ++i) l[i] = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K; ++i) l[i] = Max(v[i] - lam * ElemSym<N, K, M>(v, i), 0.0f);
}

// True when u_K = 0: every fixed point has w_K = 0, so the K-sparse candidate only repeats a
// sparser one.
template <int N, int K, int M>
PS_HD bool SkipCandidate(const float (&v)[M], float lam) {
  float l[M];
  FixedPointLowerBounds<N, K, M>(v, lam, l);
  return v[K - 1] - lam * ElemSym<N, K, M>(l, K - 1) <= 0.0f;
}

// 2:4 only: true when the K-sparse face (K = 3, 4) provably has no interior local minimum, so its
// candidate can only repeat a sparser one. Why: fix every coordinate of the face but the pair
// (1, K) at x; eliminating the pair in closed form leaves a function of x whose second derivative
// along the pair's stationary curve is
//     1 - lam^2/2 (S^2 / (1 + lam x)^3 + D^2 / (1 - lam x)^3),  S = v_1 + v_K, D = v_1 - v_K,
// (the Schur complement of the face's Hessian; it must be >= 0 at a local minimum). Its maximum
// over x, at (1 - lam x)^2 S = (1 + lam x)^2 D, is 1 - lam^2 (sqrt S + sqrt D)^4 / 16; for the
// 3-sparse face the third coordinate is x itself, and for the dense face the fixed fourth
// coordinate t only adds t + lam t^2 to the data of the remaining three (substitute w_i = x_i - t),
// which raises S. So a local minimum needs lam (sqrt S + sqrt D)^2 < 4, i.e.
// lam (v_1 + sqrt(v_1^2 - v_K^2)) < 2. The margin covers the rounding of this test (a few ulps;
// the difference of squares is formed as (v_1 - v_K)(v_1 + v_K), exact to one rounding). At
// lambda = 25 on Llama-scale weights it rules out both candidates for about half of the groups.
inline constexpr float kNoMinimumCoupling = 2.0001f;
template <int K>
PS_HD bool NoInteriorMinimum24(const float (&v)[4], float lam) {
  // lam (v_1 + r) >= 2 needs lam v_1 >= 1 (r <= v_1): at small lambda no square root is taken.
  if (lam * v[0] < 1.0f) return false;
  const float r = sqrtf(Max((v[0] - v[K - 1]) * (v[0] + v[K - 1]), 0.0f));
  return lam * (v[0] + r) >= kNoMinimumCoupling;
}

// A lower bound on the objective (with `tail`) of every fixed point of the K-sparse candidate:
// v_i - w_i >= v_i - u_i and e_{N+1}(w) >= e_{N+1}(l).
template <int N, int K, int M>
PS_HD float IntervalBound(const float (&v)[M], float lam, float tail) {
  float l[M];
  FixedPointLowerBounds<N, K, M>(v, lam, l);
  float sq = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K; ++i) {
    const float gap = v[i] - Max(v[i] - lam * ElemSym<N, K, M>(l, i), 0.0f);  // v_i - u_i
    sq += gap * gap;
  }
  return tail + 0.5f * sq + lam * ElemSym<N + 1, K, M>(l, -1);
}

// 2:4 only: tighter lower bounds on the 3-sparse and dense face minima, from concavity. Fixing the
// last coordinate x = w_K, the minimum over the others G(x) is a minimum of functions affine in x,
// hence concave, so on [0, v_K] it lies above its chord and the face minimum
// min_x 1/2 (x - v_K)^2 + G(x) is at least ChordMin(v_K, G(0), G(v_K)). For the 3-sparse face G is
// a two-variable quadratic (PairMin, closed form); for the dense face G(0) and G(v_4) are
// themselves 3-variable problems, bounded the same way by fixing w_3.

// min over w1, w2 >= 0 of 1/2 (w1 - v1)^2 + 1/2 (w2 - v2)^2 + a w1 w2 + b (w1 + w2), for
// v1 >= v2 >= 0 and a, b >= 0: the interior stationary point when the quadratic is convex (a < 1)
// and it is feasible, else the better edge (w2 = 0, w1 = max(v1 - b, 0)).
PS_HD float PairMin(float v1, float v2, float a, float b) {
  const float p1 = v1 - b, p2 = v2 - b;
  const float base = 0.5f * (v1 * v1 + v2 * v2);
  const float q1 = Max(p1, 0.0f);
  float best = base - 0.5f * q1 * q1;
  if (a < 1.0f && p2 - a * p1 > 0.0f) {  // then p1 - a p2 > 0 too (p1 >= p2, a < 1)
    best = base - (p1 * p1 + p2 * p2 - 2.0f * a * p1 * p2) / (2.0f * (1.0f - a * a));
  }
  return best;
}

// min over t in [0, 1] of 1/2 s^2 (1 - t)^2 + (1 - t) g0 + t g1: the chord bound above with
// x = t s.
PS_HD float ChordMin(float s, float g0, float g1) {
  const float d = g1 - g0, ss = s * s;
  if (d >= ss) return g0 + 0.5f * ss;
  if (d <= 0.0f) return g1;
  return g1 - d * d / (2.0f * ss);
}

// Lower bound (with tail) on the minimum of the K-sparse face, K = 3 or 4, pattern 2:4.
template <int K>
PS_HD float ChordBound24(const float (&v)[4], float lam, float tail) {
  const float three = ChordMin(v[2], 0.0f, PairMin(v[0], v[1], lam * v[2], 0.0f));
  if constexpr (K == 3) {
    return tail + three;
  } else {
    const float h0 = PairMin(v[0], v[1], lam * v[3], 0.0f);
    const float h1 = PairMin(v[0], v[1], lam * (v[2] + v[3]), lam * v[2] * v[3]);
    return tail + ChordMin(v[3], three, ChordMin(v[2], h0, h1));
  }
}

// The best point c * v on the ray through v (coordinates 1..K): minimises
// 1/2 (1 - c)^2 S + lam c^(N+1) E over c >= 0, with S = sum v_i^2, E = e_{N+1}(v), i.e. solves
// (N+1) lam E c^N + S c - S = 0 (closed form for N <= 2, Newton from c = 1 otherwise: the left
// side is convex and increasing on c >= 0, so Newton from the right converges monotonically).
// ray_obj receives the objective there (scaled units, without the tail).
template <int N, int K, int M>
PS_HD float RayScale(const float (&v)[M], float lam, float& ray_obj) {
  float sq = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K; ++i) sq += v[i] * v[i];
  const float le = lam * ElemSym<N + 1, K, M>(v, -1);
  const float a = (N + 1) * le;
  float c;
  if constexpr (N == 1) {
    c = sq / (sq + a);
  } else if constexpr (N == 2) {
    c = 2.0f * sq / (sq + sqrtf(sq * sq + 4.0f * a * sq));
  } else {
    c = 1.0f;
    PS_UNROLL
    for (int it = 0; it < 8; ++it) {
      float cn1 = 1.0f;  // c^(N-1)
      PS_UNROLL
      for (int j = 0; j < N - 1; ++j) cn1 *= c;
      c -= (a * cn1 * c + sq * c - sq) / (N * a * cn1 + sq);
    }
  }
  float cn1 = c;  // c^(N+1)
  PS_UNROLL
  for (int j = 0; j < N; ++j) cn1 *= c;
  ray_obj = 0.5f * (1.0f - c) * (1.0f - c) * sq + le * cn1;
  return c;
}

// Smallest LDL^T pivot Newton accepts: the Hessian's entries are O(1) (z_1 in [0.5, 1)), so this
// refuses near-singular systems whose step would be rounding noise.
inline constexpr float kMinNewtonPivot = 1.0e-4f;

// Solves L D L^T x = b in place (x holds b on entry), given the unit lower triangle L and 1/D.
// T is float here and a vector of lanes in prox_group_simd.h: both NewtonSteps run exactly the
// same operations in the same order (the SIMD path is tested bit-identical to this one).
template <int K, typename T>
PS_HD void LdlSolve(const T (&L)[K][K], const T (&dinv)[K], T (&x)[K]) {
  PS_UNROLL
  for (int i = 0; i < K; ++i) {
    PS_UNROLL
    for (int k = 0; k < i; ++k) x[i] -= L[i][k] * x[k];
  }
  PS_UNROLL
  for (int i = 0; i < K; ++i) x[i] *= dinv[i];
  PS_UNROLL
  for (int i = K - 1; i >= 0; --i) {
    PS_UNROLL
    for (int k = i + 1; k < K; ++k) x[i] -= L[k][i] * x[k];
  }
}

// One Newton step on the stationarity system of the K-sparse candidate restricted to its free
// coordinates (those not at 0; the zeros stay fixed: the active set of the last ALM sweep),
// F_i(w) = w_i - v_i + lam e_N(w_{-i}) = 0 (the objective's gradient on the face), whose Jacobian
// is the face's Hessian H = I + lam [e_{N-1}(w_{-i,-j})]_{i != j}; solved by LDL^T. Refused (false,
// w unchanged) when a fixed zero violates its KKT condition (v_i - lam e_N(w_{-i}) > 0: ALM would
// move it), H is not safely positive definite (not near a strict local minimum: Newton could head
// for a saddle) or the step leaves the open positive orthant (a free coordinate's limit is 0,
// which ALM's clipping reaches). step receives max |dw|.
template <int N, int K, int M>
PS_HD bool NewtonStep(const float (&v)[M], float lam, float (&w)[M], float& step) {
  float x[K], f[K];  // x: -F, then the step; f: 1 for a free coordinate, 0 for a fixed zero
  bool kkt = true;
  PS_UNROLL
  for (int i = 0; i < K; ++i) {
    x[i] = v[i] - w[i] - lam * ElemSym<N, K, M>(w, i);
    f[i] = w[i] > 0.0f ? 1.0f : 0.0f;
    kkt = kkt && (w[i] > 0.0f || x[i] <= 0.0f);
    x[i] *= f[i];
  }
  if (!kkt) return false;
  float L[K][K], d[K], dinv[K];
  PS_UNROLL
  for (int j = 0; j < K; ++j) {
    float dj = 1.0f;
    PS_UNROLL
    for (int k = 0; k < j; ++k) dj -= L[j][k] * L[j][k] * d[k];
    if (!(dj > kMinNewtonPivot)) return false;
    d[j] = dj;
    dinv[j] = 1.0f / dj;
    PS_UNROLL
    for (int i = j + 1; i < K; ++i) {
      float a = lam * ElemSym<N - 1, K, M>(w, i, j) * (f[i] * f[j]);
      PS_UNROLL
      for (int k = 0; k < j; ++k) a -= L[i][k] * L[j][k] * d[k];
      L[i][j] = a * dinv[j];
    }
  }
  LdlSolve<K>(L, dinv, x);
  float nw[K];
  bool inside = true;
  step = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K; ++i) {
    nw[i] = w[i] + x[i];  // a fixed zero has x_i = 0 exactly (its row and column are e_i)
    inside = inside && (nw[i] > 0.0f || f[i] == 0.0f);
    step = Max(step, Abs(x[i]));
  }
  if (!inside) return false;
  PS_UNROLL
  for (int i = 0; i < K; ++i) w[i] = nw[i];
  return true;
}

// ALM sweeps are cheap but only linearly convergent, with a rate near 1 where the minimum is nearly
// degenerate (strong coupling, near ties); Newton costs about three sweeps but converges
// quadratically. Newton is tried once ALM has run kSweepsBeforeNewton sweeps and its observed rate
// r predicts more than 4 further sweeps (delta * r^4 > tol); after a refused step, ALM goes on and
// Newton is retried kNewtonRetry sweeps later.
inline constexpr int kSweepsBeforeNewton = 2;
inline constexpr int kNewtonRetry = 4;

// The candidate's objective at w (scaled units, with tail).
template <int N, int K, int M, typename Trace>
PS_HD float FaceObjective(const float (&v)[M], float lam, float tail, const float (&w)[M],
                          Trace& trace) {
  float sq = 0.0f;
  PS_UNROLL
  for (int i = 0; i < K; ++i) sq += (w[i] - v[i]) * (w[i] - v[i]);
  trace.Objective(N, K);
  return 0.5f * sq + tail + lam * ElemSym<N + 1, K, M>(w, -1);
}

// obj, or the ray point's objective and w set to it if that is lower (rounding in flat minima): a
// candidate never ends above its ray point.
template <int K, int M>
PS_HD float NoWorseThanRay(const float (&v)[M], float c, float ray_obj, float tail, float obj,
                           float (&w)[M]) {
  if (!(obj <= ray_obj + tail)) {
    PS_UNROLL
    for (int i = 0; i < M; ++i) w[i] = i < K ? c * v[i] : 0.0f;
    obj = ray_obj + tail;
  }
  return obj;
}

// FaceObjective, then NoWorseThanRay.
template <int N, int K, int M, typename Trace>
PS_HD float CandidateObjective(const float (&v)[M], float lam, float c, float ray_obj, float tail,
                               float (&w)[M], Trace& trace) {
  return NoWorseThanRay<K, M>(v, c, ray_obj, tail, FaceObjective<N, K, M>(v, lam, tail, w, trace),
                              w);
}

// The stopping tolerance tol (rel_tol * z_1) bounds the distance to the limit in absolute terms,
// which leaves the objective accurate to ~K tol^2 / 2. For bf16 and fp16 that is far below the
// rounding of z_1 in storage (AlmRelTolFor), but for fp32 tol is capped at 2^-23, about that
// rounding, and then it is not small next to the objective of a badly scaled group: with one
// weight ~10^4 times the three others at small lambda the objective is ~1e-8 z_1^2, made by the
// small coordinates alone, and ALM stopped them ~1% from their limit (3 of the GPU check's 100,000
// random groups ended above the reference's objective by more than fp32's rounding allowance, up
// to 2e-5 relative). So at fp32's cap, when ALM stops, its predicted remaining distance r (from
// the last two changes) must also meet K r^2 <= kPolishObjectiveRel * obj; a candidate that misses
// it runs a second pass with Newton allowed and the tolerance sqrt(kPolishObjectiveRel * obj / K)
// (at least kMinPolishTol times tol). Llama-scale groups almost never take it (0-3 in 100,000).
inline constexpr float kPolishObjectiveRel = 1.0f / 134217728.0f;  // 2^-27
inline constexpr float kFp32RelTol = 1.0f / 8388608.0f;            // AlmRelTolFor(23) = 2^-23
inline constexpr float kMinPolishTol = 1.0f / 16777216.0f;         // 2^-24

// One pass of SolveCandidate from w: ALM sweeps with Newton where allowed (`newton`, or past
// kForceNewtonAfter sweeps), until the tolerance t is met, the change stalls in rounding noise or s
// reaches cap. last receives the final sweep's change when ALM ended the pass (prev then holds the
// change before it), 0 when Newton did.
template <int N, int K, int M, typename Trace>
PS_HD void AlmPass(const float (&v)[M], float lam, float t, bool newton, int cap, float (&w)[M],
                   int& s, int& next_newton, float& prev, float& last, Trace& trace) {
  last = 0.0f;
  while (true) {
    float delta = 0.0f;
    PS_UNROLL
    for (int i = 0; i < K; ++i) {
      const float nw = Max(v[i] - lam * ElemSym<N, K, M>(w, i), 0.0f);
      delta = Max(delta, Abs(nw - w[i]));
      w[i] = nw;
    }
    ++s;
    trace.Sweep(N, K);
    // Stop when the change is below t, or when the remaining distance predicted from linear
    // convergence (ratio r = delta / prev: delta * r / (1 - r)) is.
    if (delta <= t || delta * delta <= t * (prev - delta) || s >= cap ||
        (delta <= kNoiseFloor && prev > 0.0f && delta >= prev)) {  // or stalled in rounding noise
      last = delta;
      return;
    }
    // Past kForceNewtonAfter sweeps Newton is tried whatever the algorithm (see there).
    if ((newton || s >= kForceNewtonAfter) && s >= next_newton) {
      const float r = delta / prev;
      if (delta * (r * r) * (r * r) > t) {
        // Newton until its step is below t or the next one is predicted to be (quadratic
        // convergence: next ~ step^3 / prev_step^2, with a factor 4 of margin).
        bool done = false;
        float prev_step = delta;
        float step = 0.0f;
        while (s < cap) {
          const bool ok = NewtonStep<N, K, M>(v, lam, w, step);
          trace.Newton(N, K);
          if (!ok) break;
          ++s;
          if (step <= t ||
              (step <= 0.5f * prev_step &&
               4.0f * step * step * step <= t * prev_step * prev_step) ||
              (step <= kNoiseFloor && step > 0.5f * prev_step)) {  // stalled in rounding noise
            done = true;
            break;
          }
          prev_step = step;
        }
        if (done || s >= cap) return;
        next_newton = s + kNewtonRetry;
        delta = 0.0f;  // the next sweep's rate estimate must not use a pre-Newton delta
      }
    }
    prev = delta;
  }
}

// True when the candidate must take the second pass (see kPolishObjectiveRel): K r^2 exceeds
// kPolishObjectiveRel * obj, r = last^2 / den the remaining distance predicted from the last two
// changes (last itself when they show no contraction). A pass that Newton ended has last = 0: its
// remaining distance is second order in its last step.
PS_HD bool NeedsPolish(float last, float prev, float k, float obj) {
  const float num = last * last, den = prev > last ? prev - last : last;
  return k * num * num > kPolishObjectiveRel * obj * (den * den);  // K r^2 den^2 > ...
}

// Solves the K-sparse candidate from the ray point c * v: ALM (Algorithm 2) sweeping i = 1..K and,
// with `newton`, Newton polishing (above), then the second pass where the objective needs it.
// Starting on the ray rather than at v itself: from v, the first sweep sees every other coordinate
// at full size and, when the coupling lam * v is strong, thresholds the largest coordinates to 0,
// landing on a boundary fixed point and missing the interior minimum (e.g. near-tied groups; the
// brute-force test finds these). Returns the candidate's objective (scaled units, with tail; never
// above the ray point's: ALM only descends, and should Newton ever end higher the ray point is
// returned); w receives the point.
template <int N, int K, int M, typename Trace>
PS_HD float SolveCandidate(const float (&v)[M], float lam, float tol, float c, float ray_obj,
                           float tail, bool newton, int cap, float (&w)[M], int& iters,
                           Trace& trace) {
  PS_UNROLL
  for (int i = 0; i < M; ++i) w[i] = i < K ? c * v[i] : 0.0f;
  int s = 0, next_newton = kSweepsBeforeNewton;
  float prev = 0.0f, last = 0.0f;
  AlmPass<N, K, M>(v, lam, tol, newton, cap, w, s, next_newton, prev, last, trace);
  float obj = FaceObjective<N, K, M>(v, lam, tail, w, trace);
  if (s < cap && tol <= kFp32RelTol * v[0] && NeedsPolish(last, prev, static_cast<float>(K), obj)) {
    const float t =
        Max(sqrtf(kPolishObjectiveRel * obj / static_cast<float>(K)), kMinPolishTol * tol);
    next_newton = s + (last > 0.0f ? 1 : kSweepsBeforeNewton);
    prev = last;
    AlmPass<N, K, M>(v, lam, t, true, cap, w, s, next_newton, prev, last, trace);
    obj = FaceObjective<N, K, M>(v, lam, tail, w, trace);
  }
  iters += s;
  return NoWorseThanRay<K, M>(v, c, ray_obj, tail, obj, w);
}

// 2:4, the 3-sparse face, solved on one variable (see NoInteriorMinimum24): fixing t = w_3, the
// pair's stationary point is w_1 +- w_2 = (v_1 +- v_2) / (1 +- lam t), and the face's interior
// local minimum is the root of
//     phi(t) = t - v_3 + lam/4 (S^2 / (1 + lam t)^2 - D^2 / (1 - lam t)^2),  S, D = v_1 +- v_2,
// at which phi' > 0 (the Schur complement) and w_2 > 0. phi' rises up to t_p = (sqrt S - sqrt D) /
// (lam (sqrt S + sqrt D)) and falls after it, so phi is convex left of t_p, concave right of it,
// and increasing wherever phi' > 0: the root is unique, and Newton from min(t_p, v_3) converges to
// it monotonically (from the right on the convex side, from the left on the concave side). A step
// leaving (0, v_3], or phi' <= 0 where the search stands, proves there is no interior minimum
// (phi' is largest at min(t_p, v_3) on the feasible range). Two to four steps where ALM takes six
// to hundreds of sweeps at lambda = 25, and a quick "none" for most groups whose top-2 wins.
// The start stays left of the pair's singularity 1 / lam: with a tie (D = 0) the peak t_p is 1 /
// lam itself (phi is then convex on the whole range), where D / (1 - lam t) is 0 / 0; for D > 0, 1
// - lam t_p = 2 sqrt D / (sqrt S + sqrt D) is at least ~3e-4 (D >= one ulp of v_1), far above the
// margin, so the clamp never moves t_p.
inline constexpr int kLineSteps = 40;  // monotone Newton; past this ALM takes over
// Below this coupling (lam v_1, scaled units) ALM converges in about two sweeps, which cost less
// than the line search's start and steps; the line search takes the strongly coupled groups.
inline constexpr float kLineCoupling = 0.25f;
inline constexpr float kLineEdge = 1.0f - 1.0f / 1048576.0f;  // 1 - 2^-20
enum LineResult : int { kLineFound = 0, kLineNone = 1, kLineCapped = 2 };

// phi, phi' and the pair w_1, w_2 at t. T is float here and a vector of lanes in
// prox_group_simd.h (same operations in the same order). The pair is formed directly,
// w_1 = (v_1 - lam t v_2) / (1 - (lam t)^2) and w_2 = (v_2 - lam t v_1) / (1 - (lam t)^2), and phi
// as t - v_3 + lam w_1 w_2 (= its form above: u^2 - q^2 = 4 w_1 w_2), not from u +- q: when v_1 is
// ~10^5 times v_2 and v_3, u and q are both ~v_1 and their difference kept only a few bits of w_2
// and of phi (seen: 83.5 with weights ~7e-4 at lambda 0.01 ended 1.7e-4 above the reference's
// objective). u and q still give phi', a sum of positive terms.
template <typename T>
PS_HD void LinePhi24(T v1, T v2, T v3, T s, T d, T lam, T t, T& phi, T& dphi, T& w1, T& w2) {
  const T a = lam * t;
  const T om = 1.0f - a, op = 1.0f + a;
  // 1 - a^2 to a few ulps: as 1 - a * a for a < 1/2 (exactly 1 when a^2 is below half an ulp;
  // (1 - a)(1 + a) carries the roundings of both factors, ~1e-7 away from 1, which moved w_1 of
  // the group above by an ulp of 83.5), and as (1 - a)(1 + a) from 1/2 on (1 - a is then exact,
  // and 1 - a * a would cancel near a = 1).
  const T one_m_a2 = a < 0.5f ? 1.0f - a * a : om * op;
  const T pm = 1.0f / one_m_a2;
  const T p = om * pm, m = op * pm;  // 1 / (1 + a), 1 / (1 - a)
  const T u = s * p, q = d * m;
  w1 = (v1 - a * v2) * pm;
  w2 = (v2 - a * v1) * pm;
  phi = t - v3 + lam * (w1 * w2);
  dphi = 1.0f - 0.5f * lam * lam * (u * u * p + q * q * m);
}

template <typename Trace>
PS_HD int SolveLine24(const float (&v)[4], float lam, float tol, int cap, float (&w)[4], int& iters,
                      Trace& trace) {
  trace.LineStart();
  const float s = v[0] + v[1], d = v[0] - v[1];
  const float rs = sqrtf(s), rd = sqrtf(d);
  float t = Min(Min((rs - rd) / (lam * (rs + rd)), v[2]), kLineEdge / lam);
  float phi, dphi, w1, w2;
  LinePhi24(v[0], v[1], v[2], s, d, lam, t, phi, dphi, w1, w2);
  int k = 0, result = kLineCapped;
  while (true) {
    if (!(dphi > 0.0f)) {
      result = kLineNone;
      break;
    }
    if (k >= cap) break;
    const float step = phi / dphi;
    t -= step;
    ++k;
    trace.LineStep();
    if (!(t > 0.0f && t <= v[2] && lam * t < 1.0f)) {
      result = kLineNone;
      break;
    }
    LinePhi24(v[0], v[1], v[2], s, d, lam, t, phi, dphi, w1, w2);
    if (Abs(step) <= tol) {
      result = dphi > 0.0f && w2 > 0.0f ? kLineFound : kLineNone;
      break;
    }
  }
  iters += k;
  w[0] = w1;
  w[1] = w2;
  w[2] = t;
  w[3] = 0.0f;
  return result;
}

// Per-candidate data gathered before any candidate is solved (arrays indexed by K, compile-time).
template <int M>
struct CandidatePlan {
  bool run[M + 1];     // not structurally skipped (v_K > 0 and u_K > 0)
  float c[M + 1];      // ray scale
  float ray[M + 1];    // objective at the ray point, with tail: an upper bound on the candidate's
  float later[M + 1];  // min of ray[] over the candidates after K that run (+inf if none)
};

template <int N, int K, int M, typename Trace>
PS_HD void PlanCandidates(const float (&v)[M], float lam, const float (&tail)[M + 1],
                          bool closed_forms, CandidatePlan<M>& plan, Trace& trace) {
  if constexpr (K <= M) {
    // v is sorted: v_K == 0 means every candidate from K on equals a sparser one.
    bool none = false;
    if constexpr (N == 2 && M == 4) {
      none = closed_forms && NoInteriorMinimum24<K>(v, lam);
      if (closed_forms && lam * v[0] >= 1.0f) trace.NoMinimumTest();
    }
    plan.run[K] = v[K - 1] > 0.0f && !none && !SkipCandidate<N, K, M>(v, lam);
    trace.Skip(N, K);
    if (plan.run[K]) {
      float ray_obj = 0.0f;
      plan.c[K] = RayScale<N, K, M>(v, lam, ray_obj);
      plan.ray[K] = ray_obj + tail[K];
      trace.Ray(N, K);
    }
    PlanCandidates<N, K + 1, M>(v, lam, tail, closed_forms, plan, trace);
    float later = 3.0e38f;
    if constexpr (K < M) {
      later = plan.run[K + 1] ? Min(plan.ray[K + 1], plan.later[K + 1]) : plan.later[K + 1];
    }
    plan.later[K] = later;
  }
}

// True when the K-sparse candidate provably cannot end below `bound`, an upper bound on the final
// best objective. Only tried when another candidate (or the best so far) already looks better
// than K's ray point, so the likely winner pays for no bound.
template <int N, int K, int M, typename Trace>
PS_HD bool CannotWin(const float (&v)[M], float lam, const float (&tail)[M + 1],
                     const CandidatePlan<M>& plan, float bound, Trace& trace) {
  if (!(plan.ray[K] > bound)) return false;
  trace.Bound(N, K);
  // The bounds are evaluated in float from terms of size up to v_1^2 (v_1 in [0.5, 1) after
  // scaling): a lower bound within their rounding of `bound` proves nothing. Without this margin
  // groups whose objective is ~1e-8 of v_1^2 (one weight 10^4 times the others, small lambda) lost
  // their best candidate (up to 24% above the reference objective).
  const float margin = 64.0f * 1.1920929e-7f * v[0] * v[0];
  if (IntervalBound<N, K, M>(v, lam, tail[K]) >= bound + margin) return true;
  if constexpr (N == 2 && M == 4) {
    trace.Chord(K);
    return ChordBound24<K>(v, lam, tail[K]) >= bound + margin;
  }
  return false;
}

// Solves the planned candidates in order K = N+1..M and keeps the lowest objective. With `bounds`,
// a candidate is skipped when its lower bound is at least the best objective so far or the ray
// objective of a later candidate that runs (the final best is at most either: a later candidate is
// either solved, ending no higher than its ray point, or skipped because the best then was already
// at most its lower bound, itself at most its ray objective).
template <int N, int K, int M, typename Trace>
PS_HD void TryCandidates(const float (&v)[M], float lam, float tol, const float (&tail)[M + 1],
                         const CandidatePlan<M>& plan, bool newton, bool bounds,
                         const GroupLimits& limits, float (&best)[M], float& best_obj,
                         GroupOutcome& out, Trace& trace) {
  if constexpr (K <= M) {
    // Every point of the K-sparse face has objective >= tail[K] (its zeroed coordinates alone),
    // and the final best is at most min(best so far, a later candidate's ray objective), so when
    // that is already below tail[K] the candidate cannot win: skipping it leaves the result
    // unchanged (strict <, so ties still go to the sparser candidate). One compare; at small
    // lambda it skips most 3-sparse candidates of 2:4.
    const float bound = Min(best_obj, plan.later[K]);
    if (plan.run[K] && !(bound < tail[K]) &&
        !(bounds && CannotWin<N, K, M>(v, lam, tail, plan, bound, trace))) {
      // With a budget, a candidate may run only what is left of it; running out defers the group.
      const int left = limits.budget - out.sweeps;
      const int cap =
          limits.budget > 0 && left < limits.max_iterations ? left : limits.max_iterations;
      if (cap <= 0) {
        out.deferred = true;
        return;
      }
      float w[M];
      int iters = 0;
      float obj = 3.0e38f;
      int line = kLineCapped;  // the ALM path runs unless the line search settles the candidate
      if constexpr (N == 2 && M == 4 && K == 3)
        if (limits.closed_forms && lam * v[0] >= kLineCoupling) {
          const int line_cap = cap < kLineSteps ? cap : kLineSteps;
          line = SolveLine24(v, lam, tol, line_cap, w, iters, trace);
          if (line == kLineCapped && line_cap < kLineSteps) {  // the budget ran out
            out.sweeps += iters;
            out.deferred = true;
            return;
          }
          if (line == kLineFound)
            obj = CandidateObjective<N, K, M>(v, lam, plan.c[K], plan.ray[K] - tail[K], tail[K], w,
                                              trace);
        }
      if (line == kLineCapped) {
        const int alm_cap = cap - iters;
        if (alm_cap <= 0) {
          out.sweeps += iters;
          out.deferred = true;
          return;
        }
        int alm_iters = 0;
        obj = SolveCandidate<N, K, M>(v, lam, tol, plan.c[K], plan.ray[K] - tail[K], tail[K],
                                      newton, alm_cap, w, alm_iters, trace);
        iters += alm_iters;
        if (alm_iters >= alm_cap && cap < limits.max_iterations) {
          out.sweeps += iters;
          out.deferred = true;
          return;
        }
      }
      out.sweeps += iters;
      if (iters >= limits.max_iterations) out.converged = false;
      if (obj < best_obj) {
        best_obj = obj;
        out.winner = K - N;
        PS_UNROLL
        for (int i = 0; i < M; ++i) best[i] = w[i];
      }
    }
    TryCandidates<N, K + 1, M>(v, lam, tol, tail, plan, newton, bounds, limits, best, best_obj, out,
                               trace);
  }
}

}  // namespace detail

// Replaces y (one group, as floats) by prox_{lambda Reg_{N:M}}(y). lambda must be finite and
// >= 0 (the callers check). A group with a NaN/Inf is left unchanged and reported. limits: see
// GroupLimits (a deferred group is left unchanged). trace sees every piece of work (NoTrace: none).
template <int N, int M, typename Trace>
PS_HD GroupOutcome ProxGroupTraced(float (&y)[M], float lambda, float rel_tol, ProxAlgo algo,
                                   const GroupLimits& limits, Trace& trace) {
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
  // z = |y| sorted descending (ties: lower index first); swapped[] records the network's
  // exchanges so that replaying them in reverse unsorts the result.
  float v[M];
  int idx[M];
  PS_UNROLL
  for (int i = 0; i < M; ++i) {
    v[i] = Abs(y[i]);
    idx[i] = i;
  }
  bool swapped[SortNetSize<M>()];
  SortDescending<M>(v, idx, swapped);
  const float zmax = v[0];
  if (zmax == 0.0f) return out;  // all zeros: already sparse, objective 0

  // Power-of-two scale: z_1 * 2^-e in [0.5, 1) (exponent clamped so both factors are normal).
  int e = static_cast<int>((FloatBits(zmax) >> 23) & 0xff) - 126;
  e = e < -126 ? -126 : (e > 126 ? 126 : e);
  const float down = Pow2(-e), up = Pow2(e);
  PS_UNROLL
  for (int k = 0; k < M; ++k) v[k] *= down;
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
  trace.Base(M);
  if (best_obj > 0.0f) {
    CandidatePlan<M> plan{};
    PlanCandidates<N, N + 1, M>(v, lam, tail, limits.closed_forms, plan, trace);
    TryCandidates<N, N + 1, M>(v, lam, rel_tol * v[0], tail, plan, algo != ProxAlgo::kAlm,
                               algo == ProxAlgo::kNewtonBounds, limits, best, best_obj, out, trace);
    if (out.deferred) return out;
  }
  // Unsort (the exchanges replayed in reverse), unscale, restore signs; pruned weights become +0.
  Unsort<M>(best, swapped);
  PS_UNROLL
  for (int i = 0; i < M; ++i) {
    const float mag = best[i] * up;
    y[i] = best[i] > 0.0f ? (y[i] < 0.0f ? -mag : mag) : 0.0f;
  }
  const double s = static_cast<double>(up);
  out.objective = static_cast<double>(best_obj) * s * s;
  return out;
}

template <int N, int M>
PS_HD GroupOutcome ProxGroup(float (&y)[M], float lambda, float rel_tol,
                             ProxAlgo algo = kDefaultProxAlgo, const GroupLimits& limits = {}) {
  detail::NoTrace trace;
  return ProxGroupTraced<N, M>(y, lambda, rel_tol, algo, limits, trace);
}

}  // namespace ps::prox

// The CPU's vectorised EnumALM: prox_group.h's per-group algorithm run on 8 groups at once
// in lock step (GCC/Clang vector extensions; each lane is one group, every branch of the scalar
// code becomes a per-lane mask, loops run until every lane is done). It performs, per lane, the
// same fp32 operations in the same order as the scalar code, so the results are bit-identical
// (tests/worker/prox/prox_simd_test.cc checks this; the CPU build keeps fp-contract off). The
// scalar code stays the one the CUDA kernel runs; this file exists because the per-group work is
// a chain of dependent operations, which one core executes several times faster when the
// independent groups fill the vector lanes.
//
// Supports ProxAlgo::kAlm and kNewton (kNewtonBounds stays scalar; prox_cpu.cc dispatches, and uses
// it for groups of 4 only). Compiled for AVX2 (8 lanes in a register) it is 3-5x faster than the
// scalar code on one core; for plain SSE2 it is slower than scalar, so prox_cpu.cc compiles it for
// AVX2 and takes it only where the CPU has AVX2.
#pragma once

#include <cmath>
#include <cstdint>

#include "worker/prox/prox_group.h"

// Every function here is always inlined into the caller (prox_cpu.cc compiles that caller for AVX2
// and picks it at run time), so the vector calling convention, which changes with AVX, never
// matters; files that include this build with -Wno-psabi.

namespace ps::prox::simd {

// A lane set: 8 lanes fill an AVX2 register. (The code is generic in the lane set; a 16-lane
// AVX-512 set compiled by GCC ran slower than this one.)
struct Lanes8 {
  static constexpr int kLanes = 8;
  typedef float F __attribute__((vector_size(32)));
  typedef int32_t I __attribute__((vector_size(32)));
  typedef uint32_t U __attribute__((vector_size(32)));
};
template <typename V>
using F = typename V::F;
template <typename V>
using I = typename V::I;
template <typename V>
using U = typename V::U;

#define PS_SIMD inline __attribute__((always_inline))

template <typename V>
PS_SIMD F<V> Splat(float x) {
  return F<V>{} + x;
}
template <typename V>
PS_SIMD I<V> SplatI(int32_t x) {
  return I<V>{} + x;
}
template <typename V>
PS_SIMD bool Any(I<V> m) {
  int32_t r = 0;
  for (int i = 0; i < V::kLanes; ++i) r |= m[i];
  return r != 0;
}
template <typename V>
PS_SIMD F<V> Max(F<V> a, F<V> b) {
  return a > b ? a : b;
}
template <typename V>
PS_SIMD F<V> Min(F<V> a, F<V> b) {
  return a < b ? a : b;
}
template <typename V>
PS_SIMD F<V> Abs(F<V> a) {
  return reinterpret_cast<F<V>>(reinterpret_cast<U<V>>(a) & 0x7fffffffu);
}
template <typename V>
PS_SIMD F<V> Sel(I<V> m, F<V> a, F<V> b) {
  return m ? a : b;
}
template <typename V>
PS_SIMD I<V> SelI(I<V> m, I<V> a, I<V> b) {
  return m ? a : b;
}

// See prox_group.h SkipCandidate (mask: -1 where the K-sparse candidate is skipped).
template <typename V, int N, int K, int M>
PS_SIMD I<V> SkipCandidate(const F<V> (&v)[M], F<V> lam) {
  F<V> l[M];
  PS_UNROLL
  for (int i = 0; i < M; ++i) l[i] = Splat<V>(0.0f);
  PS_UNROLL
  for (int i = 0; i < K; ++i)
    l[i] = Max<V>(v[i] - lam * detail::ElemSym<N, K, M>(v, i), Splat<V>(0.0f));
  return v[K - 1] - lam * detail::ElemSym<N, K, M>(l, K - 1) <= 0.0f;
}

// See prox_group.h NoInteriorMinimum24 (mask: -1 where the face has no interior local minimum).
template <typename V, int K>
PS_SIMD I<V> NoInteriorMinimum24(const F<V> (&v)[4], F<V> lam) {
  const F<V> d = Max<V>((v[0] - v[K - 1]) * (v[0] + v[K - 1]), Splat<V>(0.0f));
  F<V> r = Splat<V>(0.0f);
  for (int i = 0; i < V::kLanes; ++i) r[i] = sqrtf(d[i]);
  return lam * (v[0] + r) >= detail::kNoMinimumCoupling;
}

// See prox_group.h RayScale.
template <typename V, int N, int K, int M>
PS_SIMD F<V> RayScale(const F<V> (&v)[M], F<V> lam, F<V>& ray_obj) {
  F<V> sq = Splat<V>(0.0f);
  PS_UNROLL
  for (int i = 0; i < K; ++i) sq += v[i] * v[i];
  const F<V> le = lam * detail::ElemSym<N + 1, K, M>(v, -1);
  const F<V> a = static_cast<float>(N + 1) * le;
  F<V> c;
  if constexpr (N == 1) {
    c = sq / (sq + a);
  } else if constexpr (N == 2) {
    const F<V> r = sq * sq + 4.0f * a * sq;
    F<V> root = Splat<V>(0.0f);
    for (int i = 0; i < V::kLanes; ++i) root[i] = sqrtf(r[i]);
    c = 2.0f * sq / (sq + root);
  } else {
    c = Splat<V>(1.0f);
    PS_UNROLL
    for (int it = 0; it < 8; ++it) {
      F<V> cn1 = Splat<V>(1.0f);
      PS_UNROLL
      for (int j = 0; j < N - 1; ++j) cn1 *= c;
      c -= (a * cn1 * c + sq * c - sq) / (static_cast<float>(N) * a * cn1 + sq);
    }
  }
  F<V> cn1 = c;
  PS_UNROLL
  for (int j = 0; j < N; ++j) cn1 *= c;
  ray_obj = 0.5f * (1.0f - c) * (1.0f - c) * sq + le * cn1;
  return c;
}

// See prox_group.h NewtonStep; ok is the per-lane acceptance, nw the stepped point (w itself is
// not modified).
template <typename V, int N, int K, int M>
PS_SIMD I<V> NewtonStep(const F<V> (&v)[M], F<V> lam, const F<V> (&w)[M], F<V> (&nw)[M],
                        F<V>& step) {
  F<V> x[K], f[K];
  I<V> ok = SplatI<V>(-1);
  PS_UNROLL
  for (int i = 0; i < K; ++i) {
    x[i] = v[i] - w[i] - lam * detail::ElemSym<N, K, M>(w, i);
    const I<V> free = w[i] > 0.0f;
    f[i] = Sel<V>(free, Splat<V>(1.0f), Splat<V>(0.0f));
    ok &= free | (x[i] <= 0.0f);
    x[i] *= f[i];
  }
  F<V> L[K][K], d[K], dinv[K];
  PS_UNROLL
  for (int j = 0; j < K; ++j) {
    F<V> dj = Splat<V>(1.0f);
    PS_UNROLL
    for (int k = 0; k < j; ++k) dj -= L[j][k] * L[j][k] * d[k];
    ok &= dj > detail::kMinNewtonPivot;
    d[j] = dj;
    dinv[j] = 1.0f / dj;
    PS_UNROLL
    for (int i = j + 1; i < K; ++i) {
      F<V> a = lam * detail::ElemSym<N - 1, K, M>(w, i, j) * (f[i] * f[j]);
      PS_UNROLL
      for (int k = 0; k < j; ++k) a -= L[i][k] * L[j][k] * d[k];
      L[i][j] = a * dinv[j];
    }
  }
  detail::LdlSolve<K>(L, dinv, x);
  step = Splat<V>(0.0f);
  PS_UNROLL
  for (int i = 0; i < M; ++i) nw[i] = w[i];
  PS_UNROLL
  for (int i = 0; i < K; ++i) {
    nw[i] = w[i] + x[i];
    ok &= (nw[i] > 0.0f) | (f[i] == 0.0f);
    step = Max<V>(step, Abs<V>(x[i]));
  }
  return ok;
}

// See prox_group.h FaceObjective.
template <typename V, int N, int K, int M>
PS_SIMD F<V> FaceObjective(const F<V> (&v)[M], F<V> lam, F<V> tail, const F<V> (&w)[M]) {
  F<V> sq = Splat<V>(0.0f);
  PS_UNROLL
  for (int i = 0; i < K; ++i) sq += (w[i] - v[i]) * (w[i] - v[i]);
  return 0.5f * sq + tail + lam * detail::ElemSym<N + 1, K, M>(w, -1);
}

// See prox_group.h NoWorseThanRay.
template <typename V, int K, int M>
PS_SIMD F<V> NoWorseThanRay(const F<V> (&v)[M], F<V> c, F<V> ray_obj, F<V> tail, F<V> obj,
                            F<V> (&w)[M]) {
  const I<V> worse = ~(obj <= ray_obj + tail);
  PS_UNROLL
  for (int i = 0; i < M; ++i) w[i] = Sel<V>(worse, i < K ? c * v[i] : Splat<V>(0.0f), w[i]);
  return Sel<V>(worse, ray_obj + tail, obj);
}

// See prox_group.h CandidateObjective.
template <typename V, int N, int K, int M>
PS_SIMD F<V> CandidateObjective(const F<V> (&v)[M], F<V> lam, F<V> c, F<V> ray_obj, F<V> tail,
                                F<V> (&w)[M]) {
  return NoWorseThanRay<V, K, M>(v, c, ray_obj, tail, FaceObjective<V, N, K, M>(v, lam, tail, w),
                                 w);
}

// See prox_group.h SolveLine24 (no budget: the line search's cap is kLineSteps); returns each
// lane's LineResult, for the lanes in `go`.
template <typename V>
PS_SIMD I<V> SolveLine24(const F<V> (&v)[4], F<V> lam, F<V> tol, I<V> go, F<V> (&w)[4],
                         I<V>& iters) {
  const F<V> s = v[0] + v[1], d = v[0] - v[1];
  F<V> rs = Splat<V>(0.0f), rd = Splat<V>(0.0f);
  for (int i = 0; i < V::kLanes; ++i) {
    rs[i] = sqrtf(s[i]);
    rd[i] = sqrtf(d[i]);
  }
  F<V> t = Min<V>(Min<V>((rs - rd) / (lam * (rs + rd)), v[2]), detail::kLineEdge / lam);
  F<V> phi, dphi, w1, w2;
  detail::LinePhi24<F<V>>(v[0], v[1], v[2], s, d, lam, t, phi, dphi, w1, w2);
  I<V> k = SplatI<V>(0), result = SplatI<V>(detail::kLineCapped), active = go;
  while (Any<V>(active)) {
    const I<V> none = active & ~(dphi > 0.0f);
    result = SelI<V>(none, SplatI<V>(detail::kLineNone), result);
    active &= ~none & ~(k >= detail::kLineSteps);  // capped lanes keep kLineCapped
    if (!Any<V>(active)) break;
    const F<V> step = phi / dphi;
    t = Sel<V>(active, t - step, t);
    k -= active;
    const I<V> leave = active & ~((t > 0.0f) & (t <= v[2]) & (lam * t < 1.0f));
    result = SelI<V>(leave, SplatI<V>(detail::kLineNone), result);
    active &= ~leave;
    F<V> nphi, ndphi, nw1, nw2;
    detail::LinePhi24<F<V>>(v[0], v[1], v[2], s, d, lam, t, nphi, ndphi, nw1, nw2);
    phi = Sel<V>(active, nphi, phi);
    dphi = Sel<V>(active, ndphi, dphi);
    w1 = Sel<V>(active, nw1, w1);
    w2 = Sel<V>(active, nw2, w2);
    const I<V> conv = active & (Abs<V>(step) <= tol);
    const I<V> found = (dphi > 0.0f) & (w2 > 0.0f);
    result = SelI<V>(
        conv, SelI<V>(found, SplatI<V>(detail::kLineFound), SplatI<V>(detail::kLineNone)), result);
    active &= ~conv;
  }
  iters = k;
  w[0] = w1;
  w[1] = w2;
  w[2] = t;
  w[3] = Splat<V>(0.0f);
  return result;
}

// See prox_group.h AlmPass: the lanes in `active` run (newton_all: every lane may take Newton
// steps, else those past kForceNewtonAfter sweeps); the others are left alone.
template <typename V, int N, int K, int M>
PS_SIMD void AlmPass(const F<V> (&v)[M], F<V> lam, F<V> t, bool newton_all, I<V> active, I<V> cap,
                     F<V> (&w)[M], I<V>& s, I<V>& next_newton, F<V>& prev, F<V>& last) {
  last = Splat<V>(0.0f);
  while (Any<V>(active)) {
    F<V> delta = Splat<V>(0.0f);
    PS_UNROLL
    for (int i = 0; i < K; ++i) {
      const F<V> nw = Max<V>(v[i] - lam * detail::ElemSym<N, K, M>(w, i), Splat<V>(0.0f));
      delta = Max<V>(delta, Abs<V>(nw - w[i]));
      w[i] = Sel<V>(active, nw, w[i]);
    }
    s -= active;  // += 1 where active (masks are -1)
    const I<V> stop = (delta <= t) | (delta * delta <= t * (prev - delta)) | (s >= cap) |
                      ((delta <= kNoiseFloor) & (prev > 0.0f) & (delta >= prev));
    last = Sel<V>(active & stop, delta, last);
    I<V> cont = active & ~stop;
    // Newton lanes: all with newton_all, else those past kForceNewtonAfter sweeps (prox_group.h).
    const I<V> may_newton = newton_all ? cont : cont & (s >= kForceNewtonAfter);
    if (Any<V>(may_newton)) {
      const F<V> r = delta / prev;
      const I<V> nt = may_newton & (s >= next_newton) & (delta * (r * r) * (r * r) > t);
      if (Any<V>(nt)) {
        F<V> prev_step = delta;
        I<V> done = SplatI<V>(0);
        I<V> inner = nt & (s < cap);
        while (Any<V>(inner)) {
          F<V> nw[M], step;
          const I<V> ok = inner & NewtonStep<V, N, K, M>(v, lam, w, nw, step);
          PS_UNROLL
          for (int i = 0; i < K; ++i) w[i] = Sel<V>(ok, nw[i], w[i]);
          s -= ok;
          const I<V> conv = ok & ((step <= t) |
                                  ((step <= 0.5f * prev_step) &
                                   (4.0f * step * step * step <= t * prev_step * prev_step)) |
                                  ((step <= kNoiseFloor) & (step > 0.5f * prev_step)));
          done |= conv;
          prev_step = Sel<V>(ok, step, prev_step);
          inner = ok & ~conv & (s < cap);
        }
        const I<V> finish = nt & (done | (s >= cap));  // last stays 0 (prox_group.h)
        const I<V> refused = nt & ~finish;
        next_newton = SelI<V>(refused, s + detail::kNewtonRetry, next_newton);
        delta = Sel<V>(refused, Splat<V>(0.0f), delta);
        cont &= ~finish;
      }
    }
    prev = Sel<V>(cont, delta, prev);
    active = cont;
  }
}

// See prox_group.h NeedsPolish (mask).
template <typename V>
PS_SIMD I<V> NeedsPolish(F<V> last, F<V> prev, float k, F<V> obj) {
  const F<V> num = last * last, den = Sel<V>(prev > last, prev - last, last);
  return k * num * num > detail::kPolishObjectiveRel * obj * (den * den);
}

// See prox_group.h SolveCandidate; lanes outside `go` are left alone (their w is garbage). cap:
// each lane's iteration cap (kMaxIterations less what a line search already ran).
template <typename V, int N, int K, int M>
PS_SIMD F<V> SolveCandidate(const F<V> (&v)[M], F<V> lam, F<V> tol, F<V> c, F<V> ray_obj, F<V> tail,
                            bool newton, I<V> go, I<V> cap, F<V> (&w)[M], I<V>& iters) {
  PS_UNROLL
  for (int i = 0; i < M; ++i) w[i] = i < K ? c * v[i] : Splat<V>(0.0f);
  I<V> s = SplatI<V>(0), next_newton = SplatI<V>(detail::kSweepsBeforeNewton);
  F<V> prev = Splat<V>(0.0f), last;
  AlmPass<V, N, K, M>(v, lam, tol, newton, go, cap, w, s, next_newton, prev, last);
  F<V> obj = FaceObjective<V, N, K, M>(v, lam, tail, w);
  // Only lanes at fp32's tolerance cap can need the second pass (prox_group.h).
  const I<V> again = go & (s < cap) & (tol <= detail::kFp32RelTol * v[0]) &
                     NeedsPolish<V>(last, prev, static_cast<float>(K), obj);
  if (Any<V>(again)) {
    const F<V> sq = detail::kPolishObjectiveRel * obj / static_cast<float>(K);
    F<V> root = Splat<V>(0.0f);
    for (int i = 0; i < V::kLanes; ++i)
      if (again[i]) root[i] = sqrtf(sq[i]);
    const F<V> t = Max<V>(root, detail::kMinPolishTol * tol);
    next_newton = SelI<V>(
        again, s + SelI<V>(last > 0.0f, SplatI<V>(1), SplatI<V>(detail::kSweepsBeforeNewton)),
        next_newton);
    prev = Sel<V>(again, last, prev);
    F<V> last2;
    AlmPass<V, N, K, M>(v, lam, t, true, again, cap, w, s, next_newton, prev, last2);
    obj = Sel<V>(again, FaceObjective<V, N, K, M>(v, lam, tail, w), obj);
  }
  iters = s;
  return NoWorseThanRay<V, K, M>(v, c, ray_obj, tail, obj, w);
}

template <typename V, int M>
struct Plan {
  I<V> run[M + 1];
  F<V> c[M + 1], ray[M + 1];
  F<V> later[M + 1];  // min of ray[] over the candidates after K that run (+inf if none)
};

template <typename V, int N, int K, int M>
PS_SIMD void PlanCandidates(const F<V> (&v)[M], F<V> lam, const F<V> (&tail)[M + 1], I<V> positive,
                            Plan<V, M>& plan) {
  if constexpr (K <= M) {
    I<V> none = SplatI<V>(0);
    if constexpr (N == 2 && M == 4) none = NoInteriorMinimum24<V, K>(v, lam);
    plan.run[K] = positive & (v[K - 1] > 0.0f) & ~none & ~SkipCandidate<V, N, K, M>(v, lam);
    plan.ray[K] = Splat<V>(3.0e38f);
    if (Any<V>(plan.run[K])) {
      F<V> ray_obj;
      plan.c[K] = RayScale<V, N, K, M>(v, lam, ray_obj);
      plan.ray[K] = ray_obj + tail[K];
    }
    PlanCandidates<V, N, K + 1, M>(v, lam, tail, positive, plan);
    F<V> later = Splat<V>(3.0e38f);
    if constexpr (K < M) {
      later =
          Sel<V>(plan.run[K + 1], Min<V>(plan.ray[K + 1], plan.later[K + 1]), plan.later[K + 1]);
    }
    plan.later[K] = later;
  }
}

template <typename V>
struct Outcome {
  I<V> finite, converged, winner, sweeps;
  F<V> best_obj, up;  // objective in scaled units and the scale: objective = best_obj * up^2
};

template <typename V, int N, int K, int M>
PS_SIMD void TryCandidates(const F<V> (&v)[M], F<V> lam, F<V> tol, const F<V> (&tail)[M + 1],
                           const Plan<V, M>& plan, bool newton, F<V> (&best)[M], F<V>& best_obj,
                           Outcome<V>& out) {
  if constexpr (K <= M) {
    // The tail bound of prox_group.h's TryCandidates: lanes whose best is already below tail[K]
    // skip the candidate (same lanes as the scalar path, so the statistics stay identical).
    const I<V> go = plan.run[K] & ~(Min<V>(best_obj, plan.later[K]) < tail[K]);
    if (Any<V>(go)) {
      // As prox_group.h's TryCandidates: the 3-sparse candidate of 2:4 by the line search, ALM
      // where it is capped.
      F<V> w[M] = {};
      I<V> iters = SplatI<V>(0);
      F<V> obj = Splat<V>(3.0e38f);
      I<V> alm = go;
      I<V> alm_cap = SplatI<V>(kMaxIterations);
      if constexpr (N == 2 && M == 4 && K == 3) {
        F<V> wl[M];
        const I<V> line = go & (lam * v[0] >= detail::kLineCoupling);
        const I<V> res = SolveLine24<V>(v, lam, tol, line, wl, iters);
        const I<V> found = line & (res == static_cast<int>(detail::kLineFound));
        alm = (go & ~line) | (line & (res == static_cast<int>(detail::kLineCapped)));
        alm_cap -= iters;  // a lane whose line search was capped ran kLineSteps of the cap
        if (Any<V>(found)) {
          const F<V> o =
              CandidateObjective<V, N, K, M>(v, lam, plan.c[K], plan.ray[K] - tail[K], tail[K], wl);
          obj = Sel<V>(found, o, obj);
          PS_UNROLL
          for (int i = 0; i < M; ++i) w[i] = Sel<V>(found, wl[i], Splat<V>(0.0f));
        }
      }
      if (Any<V>(alm)) {
        F<V> wa[M];
        I<V> ia;
        const F<V> o = SolveCandidate<V, N, K, M>(v, lam, tol, plan.c[K], plan.ray[K] - tail[K],
                                                  tail[K], newton, alm, alm_cap, wa, ia);
        obj = Sel<V>(alm, o, obj);
        PS_UNROLL
        for (int i = 0; i < M; ++i) w[i] = Sel<V>(alm, wa[i], w[i]);
        iters += alm & ia;
      }
      out.sweeps += go & iters;
      out.converged &= ~(go & (iters >= kMaxIterations));
      const I<V> better = go & (obj < best_obj);
      best_obj = Sel<V>(better, obj, best_obj);
      out.winner = SelI<V>(better, SplatI<V>(K - N), out.winner);
      PS_UNROLL
      for (int i = 0; i < M; ++i) best[i] = Sel<V>(better, w[i], best[i]);
    }
    TryCandidates<V, N, K + 1, M>(v, lam, tol, tail, plan, newton, best, best_obj, out);
  }
}

// ProxGroup (prox_group.h) on V::kLanes groups: y[i] holds coordinate i of every lane's group.
// algo must be kAlm or kNewton.
template <typename V, int N, int M>
PS_SIMD Outcome<V> ProxGroups(F<V> (&y)[M], float lambda, float rel_tol, ProxAlgo algo) {
  static_assert(1 <= N && N < M && M <= 8, "N:M needs 1 <= N < M <= 8");
  Outcome<V> out;
  out.finite = SplatI<V>(-1);
  out.converged = SplatI<V>(-1);
  out.winner = SplatI<V>(0);
  out.sweeps = SplatI<V>(0);
  PS_UNROLL
  for (int i = 0; i < M; ++i)
    out.finite &= (reinterpret_cast<U<V>>(y[i]) & 0x7f800000u) != 0x7f800000u;
  F<V> z[M];
  I<V> rank[M];
  PS_UNROLL
  for (int i = 0; i < M; ++i) z[i] = Sel<V>(out.finite, Abs<V>(y[i]), Splat<V>(0.0f));
  PS_UNROLL
  for (int i = 0; i < M; ++i) {
    I<V> r = SplatI<V>(0);
    PS_UNROLL
    for (int j = 0; j < M; ++j) r -= (z[j] > z[i]) | ((z[j] == z[i]) & SplatI<V>(j < i ? -1 : 0));
    rank[i] = r;
  }
  F<V> zmax = Splat<V>(0.0f);
  PS_UNROLL
  for (int i = 0; i < M; ++i) zmax = Max<V>(zmax, z[i]);
  const I<V> live = zmax != 0.0f;  // finite and not all zero: the lanes whose y changes

  I<V> e = reinterpret_cast<I<V>>((reinterpret_cast<U<V>>(zmax) >> 23) & 0xffu) - 126;
  e = SelI<V>(e < -126, SplatI<V>(-126), SelI<V>(e > 126, SplatI<V>(126), e));
  const F<V> down = reinterpret_cast<F<V>>((127 - e) << 23),
             up = reinterpret_cast<F<V>>((e + 127) << 23);
  F<V> v[M];
  PS_UNROLL
  for (int k = 0; k < M; ++k) {
    F<V> s = Splat<V>(0.0f);
    PS_UNROLL
    for (int i = 0; i < M; ++i) s = Sel<V>(rank[i] == k, z[i], s);
    v[k] = s * down;
  }
  F<V> lam = Splat<V>(lambda);
  PS_UNROLL
  for (int j = 0; j < N - 1; ++j) lam = lam * up;
  lam = Sel<V>(~(lam <= 3.0e38f), Splat<V>(3.0e38f), lam);

  F<V> tail[M + 1];
  tail[M] = Splat<V>(0.0f);
  PS_UNROLL
  for (int k = M - 1; k >= 0; --k) tail[k] = tail[k + 1] + 0.5f * v[k] * v[k];

  F<V> best[M];
  PS_UNROLL
  for (int i = 0; i < M; ++i) best[i] = i < N ? v[i] : Splat<V>(0.0f);
  F<V> best_obj = tail[N];
  const I<V> positive = live & (best_obj > 0.0f);
  if (Any<V>(positive)) {
    Plan<V, M> plan = {};
    PlanCandidates<V, N, N + 1, M>(v, lam, tail, positive, plan);
    TryCandidates<V, N, N + 1, M>(v, lam, rel_tol * v[0], tail, plan, algo != ProxAlgo::kAlm, best,
                                  best_obj, out);
  }
  PS_UNROLL
  for (int i = 0; i < M; ++i) {
    F<V> b = Splat<V>(0.0f);
    PS_UNROLL
    for (int k = 0; k < M; ++k) b = Sel<V>(rank[i] == k, best[k], b);
    const F<V> mag = b * up;
    const F<V> res = Sel<V>(b > 0.0f, Sel<V>(y[i] < 0.0f, -mag, mag), Splat<V>(0.0f));
    y[i] = Sel<V>(live, res, y[i]);
  }
  out.best_obj = Sel<V>(live, best_obj, Splat<V>(0.0f));
  out.up = up;
  return out;
}

#undef PS_SIMD

}  // namespace ps::prox::simd

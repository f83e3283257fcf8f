#include "worker/models/attention.h"

#include <torch/version.h>

#include <cmath>

#include "common/error.h"

namespace ps {
namespace {

// [B, Hkv, S, D] -> [B, Hkv*groups, S, D]; query head h uses kv head h / groups (HF repeat_kv).
torch::Tensor RepeatKv(const torch::Tensor& x, int64_t groups) {
  if (groups == 1) return x;
  auto s = x.sizes();
  return x.unsqueeze(2)
      .expand({s[0], s[1], groups, s[2], s[3]})
      .reshape({s[0], s[1] * groups, s[2], s[3]});
}

// Boolean [T, S] mask, true where query t may attend key s.
torch::Tensor AllowedMask(int64_t t_len, int64_t s_len, std::optional<int64_t> window,
                          const torch::Device& device) {
  auto opts = torch::dtype(torch::kInt64).device(device);
  auto qpos = torch::arange(s_len - t_len, s_len, opts).unsqueeze(1);
  auto kpos = torch::arange(0, s_len, opts).unsqueeze(0);
  auto allowed = kpos <= qpos;
  if (window) allowed = allowed.logical_and(kpos > qpos - *window);
  return allowed;
}

void CheckShapes(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || k.sizes() != v.sizes() ||
      q.size(0) != k.size(0) || q.size(3) != k.size(3) || k.size(1) == 0 ||
      q.size(1) % k.size(1) != 0 || k.size(2) < q.size(2)) {
    throw Error("attention: incompatible shapes q" + c10::str(q.sizes()) + " k" +
                c10::str(k.sizes()) + " v" + c10::str(v.sizes()));
  }
}

}  // namespace

torch::Tensor CausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, std::optional<int64_t> window) {
  CheckShapes(q, k, v);
  int64_t groups = q.size(1) / k.size(1);
  int64_t t_len = q.size(2), s_len = k.size(2);
  auto kr = RepeatKv(k, groups);
  auto vr = RepeatKv(v, groups);
  bool window_matters = window && s_len > *window;
  // A single new query (cached decoding) sees every key: no mask at all.
  bool need_mask = t_len > 1 || window_matters;
#if TORCH_VERSION_MAJOR >= 2
  if (!need_mask) return at::scaled_dot_product_attention(q, kr, vr);
  if (t_len == s_len && !window_matters) {
    return at::scaled_dot_product_attention(q, kr, vr, {}, 0.0, /*is_causal=*/true);
  }
  return at::scaled_dot_product_attention(q, kr, vr, AllowedMask(t_len, s_len, window, q.device()));
#else
  // Explicit attention, one batch row at a time so the [H, T, S] scores stay in cache: the
  // additive mask and the scale are fused into baddbmm, softmax (in fp32) is the only other pass.
  double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto fp = q.scalar_type() == torch::kFloat32 ? q.options() : q.options().dtype(torch::kFloat32);
  torch::Tensor bias;
  if (need_mask) {
    bias = torch::zeros({t_len, s_len}, fp)
               .masked_fill(AllowedMask(t_len, s_len, window, q.device()).logical_not(),
                            -std::numeric_limits<float>::infinity());
  } else {
    bias = torch::zeros({1, 1}, fp);
  }
  auto out = torch::empty_like(q);
  for (int64_t b = 0; b < q.size(0); ++b) {
    auto qb = q[b].to(torch::kFloat32), kb = kr[b].to(torch::kFloat32);
    auto scores = torch::baddbmm(bias, qb, kb.transpose(-2, -1), /*beta=*/1, /*alpha=*/scale);
    auto probs = torch::softmax(scores, -1).to(q.scalar_type());
    out[b].copy_(torch::bmm(probs, vr[b]));
  }
  return out;
#endif
}

torch::Tensor NaiveCausalAttention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, std::optional<int64_t> window) {
  CheckShapes(q, k, v);
  auto qd = q.to(torch::kFloat64).cpu(), kd = k.to(torch::kFloat64).cpu(),
       vd = v.to(torch::kFloat64).cpu();
  int64_t B = q.size(0), Hq = q.size(1), T = q.size(2), D = q.size(3), S = k.size(2);
  int64_t groups = Hq / k.size(1);
  auto out = torch::zeros({B, Hq, T, D}, torch::dtype(torch::kFloat64));
  auto qa = qd.accessor<double, 4>(), ka = kd.accessor<double, 4>(), va = vd.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  double scale = 1.0 / std::sqrt(static_cast<double>(D));
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hq; ++h) {
      int64_t kh = h / groups;
      for (int64_t t = 0; t < T; ++t) {
        int64_t pos = S - T + t;
        std::vector<double> w(S, 0.0);
        double mx = -INFINITY;
        for (int64_t s = 0; s <= pos; ++s) {
          if (window && s <= pos - *window) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qa[b][h][t][d] * ka[b][kh][s][d];
          w[s] = dot * scale;
          mx = std::max(mx, w[s]);
        }
        double z = 0;
        for (int64_t s = 0; s <= pos; ++s) {
          if (window && s <= pos - *window) {
            w[s] = 0;
            continue;
          }
          w[s] = std::exp(w[s] - mx);
          z += w[s];
        }
        for (int64_t s = 0; s <= pos; ++s) {
          for (int64_t d = 0; d < D; ++d) oa[b][h][t][d] += w[s] / z * va[b][kh][s][d];
        }
      }
    }
  }
  return out.to(q.scalar_type());
}

}  // namespace ps

// fused_check: psserve's fused decode kernels (worker/serve/decode_fused.h) against the LibTorch
// operations they replace, on random and adversarial inputs (zeros, -0.0, huge and tiny values,
// NaN), bf16 and fp16:
//   - add + RMSNorm against `h + delta` and the model's RMSNorm module: the sum bit for bit, the
//     norm within two units in the last place (its fp32 sum of squares runs in another order, and
//     a one-unit difference before the scale can become two after it);
//   - RoPE + KV write against ApplyRope and index_put_ into the pools: bit for bit, the pools'
//     other positions untouched;
//   - SiLU-multiply against torch::silu(gate) * up: within one unit (the same fp32 formula; one
//     unit allowed for a different expf);
//   - a whole decode (a small random model, 12 steps of 3 requests, CUDA graphs) with the fused
//     kernels against the same engine without them, fed the same tokens: logits within a couple
//     of roundings of their scale.
// One JSON line per case; exits non-zero on any failure. Built only with a CUDA LibTorch.
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "worker/models/llama_model.h"
#include "worker/models/rope.h"
#include "worker/serve/decode_fused_op.h"
#include "worker/serve/engine.h"
#include "worker/sparse/random_model.h"

namespace {

int failures = 0, cases = 0;

void Report(nlohmann::json j, bool ok) {
  j["ok"] = ok;
  ++cases;
  if (!ok) ++failures;
  std::cout << j.dump() << std::endl;
}

// Largest distance in units in the last place between two 16-bit tensors of one shape (NaN
// equals NaN; a NaN against a number counts as 65535). -0.0 and +0.0 are one unit apart here,
// so "0 ulps" means the same bits.
int64_t MaxUlps(const torch::Tensor& a, const torch::Tensor& b) {
  auto ai = a.contiguous().view(torch::kInt16).to(torch::kInt32).cpu();
  auto bi = b.contiguous().view(torch::kInt16).to(torch::kInt32).cpu();
  // Sign-magnitude to a monotone integer line.
  auto line = [](const torch::Tensor& i) {
    return torch::where(i.lt(0), -(i.bitwise_and(0x7fff)) - 1, i);
  };
  auto d = (line(ai) - line(bi)).abs();
  const auto an = a.isnan().cpu(), bn = b.isnan().cpu();
  d = torch::where(an.logical_and(bn), torch::zeros_like(d), d);
  d = torch::where(an.logical_xor(bn), torch::full_like(d, 65535), d);
  return d.numel() ? d.max().item<int64_t>() : 0;
}

// Random values with the adversarial ones in place: row 0 zeros with -0.0, row 1 huge, row 2
// tiny, one NaN in the last row (when rows > 3).
const char* DtypeName(torch::ScalarType dt) { return dt == torch::kBFloat16 ? "bf16" : "fp16"; }

torch::Tensor Adversarial(int64_t rows, int64_t width, torch::ScalarType dt, const char* fill) {
  auto t = torch::randn({rows, width}, torch::dtype(torch::kFloat));
  const std::string f = fill;
  if (f == "special" && rows > 3) {
    t[0].zero_();
    t[0].narrow(0, 0, width / 2).fill_(-0.0);
    t[1].mul_(dt == torch::kFloat16 ? 100 : 1e20);
    t[2].mul_(dt == torch::kFloat16 ? 1e-4 : 1e-30);
    t[rows - 1][width / 3] = std::numeric_limits<float>::quiet_NaN();
  }
  return t.to(torch::dtype(dt).device(torch::kCUDA));
}

void CheckAddNorm(torch::ScalarType dt, int64_t rows, int64_t hidden, bool with_delta,
                  const char* fill) {
  const auto opts = torch::dtype(dt).device(torch::kCUDA);
  const auto h = Adversarial(rows, hidden, dt, fill).view({rows, 1, hidden});
  const auto delta = with_delta ? torch::randn({rows, 1, hidden}, opts) : torch::Tensor();
  ps::RMSNorm norm(hidden, 1e-5, opts);
  norm.weight.data().copy_(torch::rand({hidden}, opts) + 0.5);
  torch::NoGradGuard no_grad;
  const auto s_ref = with_delta ? h + delta : h.clone();
  const auto y_ref = norm.forward(s_ref);
  auto h_work = h.clone();
  const auto [s, y] = ps::serve::FusedAddRmsNorm(h_work, delta, norm.weight, norm.eps());
  const int64_t ulps_s = MaxUlps(s, s_ref), ulps_y = MaxUlps(y, y_ref);
  Report({{"check", "add_rmsnorm"},
          {"dtype", DtypeName(dt)},
          {"rows", rows},
          {"hidden", hidden},
          {"delta", with_delta},
          {"fill", fill},
          {"sum_ulps", ulps_s},
          {"norm_ulps", ulps_y},
          {"in_place", s.data_ptr() == h_work.data_ptr()}},
         ulps_s == 0 && ulps_y <= 2 && s.data_ptr() == h_work.data_ptr());
}

void CheckRope(torch::ScalarType dt, int64_t n, int64_t hq, int64_t hkv, int64_t d,
               const char* fill) {
  const auto opts = torch::dtype(dt).device(torch::kCUDA);
  const auto i64 = torch::dtype(torch::kInt64).device(torch::kCUDA);
  const int64_t slots = n + 2, max_len = 96;
  auto q = Adversarial(n, hq * d, dt, fill).view({n, 1, hq * d});
  auto k = Adversarial(n, hkv * d, dt, fill).view({n, 1, hkv * d});
  auto v = torch::randn({n, 1, hkv * d}, opts);
  const auto tables = ps::ComputeRope(ps::RopeInvFreq(ps::RopeConfig{}, d), 0, max_len, opts);
  // Distinct slots in shuffled order; positions anywhere, including 0 and the last.
  const auto slot = torch::randperm(slots, i64).narrow(0, 0, n);
  auto pos = torch::randint(0, max_len, {n}, i64);
  pos[0] = 0;
  if (n > 1) pos[n - 1] = max_len - 1;
  auto k_pool = torch::randn({slots, hkv, max_len, d}, opts);
  auto v_pool = torch::randn({slots, hkv, max_len, d}, opts);
  torch::NoGradGuard no_grad;
  // Reference: the engine's LibTorch path (worker/serve/engine.cc, Layers).
  const ps::RopeTables rope{tables.cos.index_select(0, pos).view({n, 1, 1, d}),
                            tables.sin.index_select(0, pos).view({n, 1, 1, d})};
  const auto q_ref = ps::ApplyRope(q.view({n, 1, hq, d}).transpose(1, 2), rope);
  const auto k_ref = ps::ApplyRope(k.view({n, 1, hkv, d}).transpose(1, 2), rope);
  auto k_pool_ref = k_pool.clone(), v_pool_ref = v_pool.clone();
  using torch::indexing::Slice;
  k_pool_ref.index_put_({slot, Slice(), pos}, k_ref.squeeze(2));
  v_pool_ref.index_put_({slot, Slice(), pos}, v.view({n, 1, hkv, d}).transpose(1, 2).squeeze(2));
  const auto q_out =
      ps::serve::FusedRopeAndCache(q, k, v, tables.cos, tables.sin, pos, slot, k_pool, v_pool);
  const int64_t uq = MaxUlps(q_out, q_ref.contiguous()), uk = MaxUlps(k_pool, k_pool_ref),
                uv = MaxUlps(v_pool, v_pool_ref);
  Report({{"check", "rope_cache"},
          {"dtype", DtypeName(dt)},
          {"n", n},
          {"q_heads", hq},
          {"kv_heads", hkv},
          {"head_dim", d},
          {"fill", fill},
          {"q_ulps", uq},
          {"k_pool_ulps", uk},
          {"v_pool_ulps", uv}},
         uq == 0 && uk == 0 && uv == 0 && q_out.sizes() == q_ref.sizes());
}

void CheckSiluMul(torch::ScalarType dt, int64_t rows, int64_t width, const char* fill) {
  const auto g = Adversarial(rows, width, dt, fill);
  const auto u = Adversarial(rows, width, dt, fill);
  torch::NoGradGuard no_grad;
  const auto ref = torch::silu(g) * u;
  const auto out = ps::serve::FusedSiluMul(g, u);
  const int64_t ulps = MaxUlps(out, ref);
  Report({{"check", "silu_mul"},
          {"dtype", DtypeName(dt)},
          {"rows", rows},
          {"width", width},
          {"fill", fill},
          {"ulps", ulps}},
         ulps <= 1);
}

// 3 requests (different prompt lengths) for 12 decode steps on one engine. With `feed` empty the
// tokens are greedy and returned in it; otherwise `feed` is decoded (teacher forcing), so two
// engines see the same inputs. Returns each step's logits [3, vocab] (fp32, CPU).
std::vector<torch::Tensor> Decode(ps::serve::Engine& e, std::vector<std::vector<int32_t>>& feed) {
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9}, {2, 7, 11, 13, 17, 19, 23}, {3}};
  const bool greedy = feed.empty();
  std::vector<int> slots;
  std::vector<int32_t> next;
  for (const auto& p : prompts) {
    const int s = *e.kv().Acquire();
    slots.push_back(s);
    next.push_back(static_cast<int32_t>(e.Prefill(s, p).argmax().item<int64_t>()));
  }
  std::vector<torch::Tensor> logits;
  for (int step = 0; step < 12; ++step) {
    if (greedy) feed.push_back(next);
    logits.push_back(e.Decode(slots, feed[static_cast<size_t>(step)]).to(torch::kFloat).cpu());
    for (size_t i = 0; i < slots.size(); ++i)
      next[i] =
          static_cast<int32_t>(logits.back()[static_cast<int64_t>(i)].argmax().item<int64_t>());
  }
  return logits;
}

void CheckEngine(torch::ScalarType dt) {
  nlohmann::json config = {{"hidden_size", 256},
                           {"intermediate_size", 688},
                           {"num_hidden_layers", 2},
                           {"num_attention_heads", 4},
                           {"num_key_value_heads", 2},
                           {"vocab_size", 512},
                           {"max_position_embeddings", 256},
                           {"rms_norm_eps", 1e-5},
                           {"model_type", "llama"}};
  const auto model =
      ps::sparse::RandomSparseModel(config, torch::dtype(dt).device(torch::kCUDA), 7);
  std::vector<std::vector<int32_t>> feed;
  std::vector<torch::Tensor> logits[2];
  for (int fused = 0; fused < 2; ++fused) {
    ps::serve::EngineOptions o;
    o.max_batch = 4;
    o.max_len = 128;
    o.exact_attention = false;
    o.decode_kernel = true;
    o.cuda_graphs = true;
    o.fused_ops = fused == 1;
    ps::serve::Engine e(model, o);
    logits[fused] = Decode(e, feed);  // the unfused run picks the tokens, the fused one follows
  }
  double worst = 0;
  int64_t same_argmax = 0, rows = 0;
  for (size_t s = 0; s < logits[0].size(); ++s) {
    const auto& a = logits[1][s];
    const auto& b = logits[0][s];
    worst = std::max(worst, ((a - b).abs().max() / b.abs().max()).item<double>());
    same_argmax += a.argmax(-1).eq(b.argmax(-1)).sum().item<int64_t>();
    rows += b.size(0);
  }
  // A couple of roundings of the logits' scale: the norms may differ by one unit.
  const double tol = dt == torch::kBFloat16 ? 1.0 / 32 : 1.0 / 128;
  Report({{"check", "engine_decode"},
          {"dtype", DtypeName(dt)},
          {"steps", logits[0].size()},
          {"max_rel_logit_diff", worst},
          {"tol", tol},
          {"same_argmax", same_argmax},
          {"rows", rows}},
         worst <= tol);
}

}  // namespace

int main() {
  if (!torch::cuda::is_available()) {
    std::cerr << "fused_check: no CUDA device\n";
    return 2;
  }
  torch::manual_seed(0);
  try {
    for (auto dt : {torch::kBFloat16, torch::kFloat16}) {
      for (const char* fill : {"randn", "special"}) {
        CheckAddNorm(dt, 32, 4096, true, fill);
        CheckAddNorm(dt, 5, 4096, false, fill);
        CheckAddNorm(dt, 4, 100, true, fill);  // width not a multiple of 8: the scalar path
        CheckRope(dt, 32, 32, 32, 128, fill);
        CheckRope(dt, 5, 8, 2, 64, fill);
        CheckSiluMul(dt, 32, 11008, fill);
        CheckSiluMul(dt, 4, 37, fill);  // the scalar path
      }
      CheckEngine(dt);
    }
  } catch (const std::exception& e) {
    std::cout << nlohmann::json{{"error", e.what()}, {"ok", false}}.dump() << std::endl;
    return 1;
  }
  std::cout << nlohmann::json{{"cases", cases}, {"failures", failures}}.dump() << std::endl;
  return failures == 0 ? 0 : 1;
}

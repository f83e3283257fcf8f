// attention_check: the decode attention kernel (worker/serve/decode_attention.h) against the slow,
// obvious fp64 reference (NaiveCausalAttention on each row's visible keys), on random and
// adversarial inputs: every head layout (MHA, GQA, MQA), head_dim 64 and 128, windows, rows at
// position 0 and at the last key, tied keys, -0.0 queries, huge and tiny values, NaN at a
// visible key (the output of that head is NaN, the others are not) and NaN past a row's position
// (never read: the output stays finite). With --bench, the decode step's shapes of psserve's
// Llama-2-7B bench timed against the batched masked call it replaces. One JSON line per case;
// exits non-zero on any failure. Built only with a CUDA LibTorch.
#include <ATen/cuda/CUDAEvent.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "worker/models/attention.h"
#include "worker/serve/decode_attention_op.h"

namespace {

struct Case {
  std::string name;
  int rows, hq, hkv, d, max_len, max_keys, window;
  std::string fill = "randn";  // randn | ties | neg_zero_q | huge | tiny | nan_seen | nan_unseen
};

// The pools [rows, hkv, max_len, d] and q [rows, hq, 1, d] of a case, and each row's position.
struct Inputs {
  torch::Tensor q, k, v, pos;
  std::vector<int64_t> positions;
};

Inputs Make(const Case& c, torch::ScalarType dt) {
  auto opts = torch::dtype(torch::kFloat);
  Inputs in;
  in.q = torch::randn({c.rows, c.hq, 1, c.d}, opts);
  in.k = torch::randn({c.rows, c.hkv, c.max_len, c.d}, opts);
  in.v = torch::randn({c.rows, c.hkv, c.max_len, c.d}, opts);
  for (int i = 0; i < c.rows; ++i) {
    int64_t p = torch::randint(0, c.max_keys, {1}).item<int64_t>();
    if (i == 0) p = 0;                             // one key only
    if (i == 1 && c.rows > 1) p = c.max_keys - 1;  // every key
    in.positions.push_back(p);
  }
  if (c.fill == "ties") {
    in.k.copy_(in.k.narrow(2, 0, 1).expand_as(in.k));
  } else if (c.fill == "neg_zero_q") {
    in.q.fill_(-0.0);
  } else if (c.fill == "huge") {
    in.q.mul_(30);
    in.k.mul_(30);
    in.v.mul_(1000);
  } else if (c.fill == "tiny") {
    const double s = dt == torch::kFloat16 ? 1e-5 : 1e-20;  // fp16: subnormal inputs
    in.q.mul_(s);
    in.k.mul_(s);
    in.v.mul_(s);
  } else if (c.fill == "nan_seen") {
    // Row 1 sees every key; a NaN in key 3 of its kv head 0.
    in.k.index_put_({1, 0, 3, 0}, std::nan(""));
  } else if (c.fill == "nan_unseen") {
    // Row 0 sees key 0 only: NaN everywhere past it.
    in.k.index_put_({0, torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None)},
                    std::nan(""));
    in.v.index_put_({0, torch::indexing::Slice(), torch::indexing::Slice(1, torch::indexing::None)},
                    std::nan(""));
  }
  // Round to the kernel's dtype first, so the reference sees exactly the kernel's inputs.
  in.q = in.q.to(dt);
  in.k = in.k.to(dt);
  in.v = in.v.to(dt);
  in.pos = torch::tensor(in.positions);
  return in;
}

// Per (row, head): max |error| / max |visible value| (the output is a convex combination of the
// visible values, so this is its rounding in units of its range), and NaN agreement.
nlohmann::json Compare(const Case& c, const Inputs& in, const torch::Tensor& got, double tol) {
  const auto g = got.to(torch::kCPU, torch::kDouble);
  double worst = 0;
  int nan_mismatch = 0, nan_heads = 0;
  for (int i = 0; i < c.rows; ++i) {
    const int64_t n = in.positions[static_cast<size_t>(i)] + 1;
    const auto q = in.q.narrow(0, i, 1).to(torch::kDouble);
    const auto k = in.k.narrow(0, i, 1).narrow(2, 0, n).to(torch::kDouble);
    const auto v = in.v.narrow(0, i, 1).narrow(2, 0, n).to(torch::kDouble);
    const std::optional<int64_t> w = c.window > 0 ? std::optional<int64_t>(c.window) : std::nullopt;
    const auto ref = ps::NaiveCausalAttention(q, k, v, w)[0];  // [hq, 1, d]
    for (int h = 0; h < c.hq; ++h) {
      const auto r = ref[h], o = g[i][h];
      const bool ref_nan = r.isnan().any().item<bool>(), got_nan = o.isnan().any().item<bool>();
      nan_heads += ref_nan;
      if (ref_nan || got_nan) {
        nan_mismatch += ref_nan != got_nan || !o.isnan().all().item<bool>();
        continue;
      }
      const int64_t first = w ? std::max<int64_t>(0, n - *w) : 0;
      const double range =
          v[0][h / (c.hq / c.hkv)].narrow(0, first, n - first).abs().max().item<double>();
      const double err = (o - r).abs().max().item<double>() / (range > 0 ? range : 1.0);
      worst = std::max(worst, err);
    }
  }
  return {{"err", worst},
          {"tol", tol},
          {"nan_heads", nan_heads},
          {"nan_mismatch", nan_mismatch},
          {"ok", worst <= tol && nan_mismatch == 0 &&
                     (c.fill != "nan_seen" || nan_heads == c.hq / c.hkv)}};
}

double Time(const std::function<void()>& f) {
  for (int i = 0; i < 5; ++i) f();
  at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
  a.record();
  for (int i = 0; i < 50; ++i) f();
  b.record();
  b.synchronize();
  return a.elapsed_time(b) * 1000.0 / 50;  // µs
}

// The decode step's attention at psserve's bench shapes (Llama-2-7B: 32 heads of 128, pool 800
// positions): the kernel vs the masked scaled_dot_product_attention over the length bucket.
void Bench(torch::ScalarType dt) {
  const int hq = 32, d = 128, max_len = 800;
  for (int rows : {1, 8, 32}) {
    for (int len : {640, 768}) {
      auto opts = torch::dtype(dt).device(torch::kCUDA);
      auto k = torch::randn({rows + 1, hq, max_len, d}, opts);
      auto v = torch::randn({rows + 1, hq, max_len, d}, opts);
      auto q = torch::randn({rows, hq, 1, d}, opts);
      auto pos = torch::full({rows}, len - 1, torch::dtype(torch::kInt64).device(torch::kCUDA));
      pos.sub_(torch::randint(0, 32, {rows}, pos.options()));
      const auto kpos = torch::arange(len, pos.options()).view({1, 1, 1, -1});
      const double kernel_us =
          Time([&] { (void)ps::serve::CudaDecodeAttention(q, k, v, pos, len, 0); });
      const double sdpa_us = Time([&] {
        auto allowed = kpos.le(pos.view({rows, 1, 1, 1}));
        (void)at::scaled_dot_product_attention(q, k.narrow(0, 0, rows).narrow(2, 0, len),
                                               v.narrow(0, 0, rows).narrow(2, 0, len), allowed);
      });
      // Keys and values each row reads: its visible positions (the kernel), the bucket (sdpa).
      const double bytes = 2.0 * pos.sum().item<double>() * hq * d * 2 + 2.0 * rows * hq * d * 2;
      std::cout << nlohmann::json{{"bench", dt == torch::kBFloat16 ? "bf16" : "fp16"},
                                  {"rows", rows},
                                  {"len", len},
                                  {"kernel_us", kernel_us},
                                  {"sdpa_us", sdpa_us},
                                  {"speedup", sdpa_us / kernel_us},
                                  {"kernel_tb_s", bytes / kernel_us / 1e6}}
                       .dump()
                << std::endl;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool bench = false;
  for (int i = 1; i < argc; ++i) bench = bench || std::string(argv[i]) == "--bench";
  if (!torch::cuda::is_available()) {
    std::cerr << "attention_check: no CUDA device\n";
    return 2;
  }
  torch::manual_seed(0);
  const std::vector<Case> cases = {
      {"mha", 5, 8, 8, 128, 300, 300, 0},
      {"mha_d64", 4, 4, 4, 64, 100, 97, 0},
      {"gqa", 3, 8, 2, 128, 520, 513, 0},
      {"mqa", 2, 4, 1, 64, 64, 64, 0},
      {"window", 4, 4, 2, 128, 200, 200, 17},
      {"one_key", 1, 2, 2, 128, 16, 1, 0},
      {"llama7b_rows32", 32, 32, 32, 128, 800, 768, 0},
      {"ties", 3, 4, 4, 128, 100, 100, 0, "ties"},
      {"neg_zero_q", 3, 4, 4, 128, 100, 100, 0, "neg_zero_q"},
      {"huge", 3, 4, 4, 128, 100, 100, 0, "huge"},
      {"tiny", 3, 4, 4, 128, 100, 100, 0, "tiny"},
      {"nan_seen", 3, 4, 2, 128, 100, 100, 0, "nan_seen"},
      {"nan_unseen", 3, 4, 2, 128, 100, 100, 0, "nan_unseen"},
  };
  int failures = 0, total = 0;
  for (auto dt : {torch::kBFloat16, torch::kFloat16}) {
    const double tol = dt == torch::kBFloat16 ? 1.0 / 128 : 1.0 / 512;
    for (const Case& c : cases) {
      const Inputs in = Make(c, dt);
      nlohmann::json j{{"case", c.name}, {"dtype", dt == torch::kBFloat16 ? "bf16" : "fp16"}};
      try {
        const auto got = ps::serve::CudaDecodeAttention(in.q.cuda(), in.k.cuda(), in.v.cuda(),
                                                        in.pos.cuda(), c.max_keys, c.window);
        if (!got.defined()) throw std::runtime_error("the kernel refused the case");
        j.update(Compare(c, in, got, tol));
      } catch (const std::exception& e) {
        j["error"] = e.what();
        j["ok"] = false;
      }
      ++total;
      failures += !j["ok"].get<bool>();
      std::cout << j.dump() << std::endl;
    }
  }
  // What the kernel does not handle is refused (the server then uses the masked call).
  {
    auto q = torch::randn({2, 4, 1, 96}, torch::dtype(torch::kBFloat16).device(torch::kCUDA));
    auto k = torch::randn({2, 4, 10, 96}, q.options());
    auto pos = torch::zeros({2}, torch::dtype(torch::kInt64).device(torch::kCUDA));
    const bool refused = !ps::serve::CudaDecodeAttention(q, k, k, pos, 10, 0).defined();
    std::cout << nlohmann::json{{"check", "head_dim 96 refused"}, {"ok", refused}}.dump()
              << std::endl;
    failures += !refused;
    ++total;
  }
  std::cout << nlohmann::json{{"cases", total}, {"failures", failures}}.dump() << std::endl;
  if (bench) {
    Bench(torch::kBFloat16);
    Bench(torch::kFloat16);
  }
  return failures ? 1 : 0;
}

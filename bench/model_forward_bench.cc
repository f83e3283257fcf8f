// Times the default model's forward pass on CPU (one batch of windows), layer pieces separately,
// to see where perplexity time goes. Usage: model_forward_bench [MODEL_DIR] [BATCH] [CTX] [REPS]
#include <ATen/Parallel.h>

#include <cstdio>
#include <string>

#include "bench/bench_timer.h"
#include "worker/models/attention.h"
#include "worker/models/llama_checkpoint.h"

namespace {
// Seconds since the program started.
double Now() {
  static const ps::bench::Stopwatch clock;
  return clock.Seconds();
}
}  // namespace

int main(int argc, char** argv) {
  std::string dir = argc > 1 ? argv[1] : std::string(PS_SHARED_DATA_DIR) + "/codelm-19m";
  int64_t batch = argc > 2 ? std::stoll(argv[2]) : 4;
  int64_t ctx = argc > 3 ? std::stoll(argv[3]) : 512;
  int reps = argc > 4 ? std::stoi(argv[4]) : 3;
  auto model = ps::LoadLlama(dir);
  torch::NoGradGuard no_grad;
  auto ids = torch::randint(0, model->config().vocab_size, {batch, ctx}, torch::kInt64);
  std::printf("threads %d, batch %lld x ctx %lld\n", at::get_num_threads(), (long long)batch,
              (long long)ctx);
  {
    int64_t H = model->config().num_attention_heads, Hkv = model->config().num_key_value_heads;
    int64_t D = model->config().head_dim;
    auto q = torch::randn({batch, H, ctx, D}), k = torch::randn({batch, Hkv, ctx, D}),
         v = torch::randn({batch, Hkv, ctx, D});
    for (int r = 0; r < reps; ++r) {
      double a = Now();
      for (int64_t i = 0; i < model->num_layers(); ++i) ps::CausalAttention(q, k, v);
      std::printf("attention core x%lld layers: %.3f s\n", (long long)model->num_layers(),
                  Now() - a);
    }
  }
  for (int r = 0; r < reps; ++r) {
    double t0 = Now();
    auto h = model->Embed(ids);
    auto rope = model->Rope(0, ctx);
    double attn = 0, mlp = 0;
    for (int64_t i = 0; i < model->num_layers(); ++i) {
      auto& L = model->layer(i);
      double a = Now();
      auto x = h + L.self_attn->forward(L.input_layernorm->forward(h), rope);
      double b = Now();
      h = x + L.mlp->forward(L.post_attention_layernorm->forward(x));
      double c = Now();
      attn += b - a;
      mlp += c - b;
    }
    double t1 = Now();
    auto logits = model->Logits(model->FinalNorm(h));
    double t2 = Now();
    auto lp = torch::log_softmax(logits.to(torch::kFloat32), -1);
    double t3 = Now();
    std::printf("total %.3f s: attention %.3f, mlp %.3f, lm_head %.3f, log_softmax %.3f\n", t3 - t0,
                attn, mlp, t2 - t1, t3 - t2);
  }
  return 0;
}

// psserve: an OpenAI-compatible HTTP server for the models this project publishes
// (docs/serving.md). Loads a model directory in any published form, runs it on the CPU (dense)
// or the GPU (2:4 kernels), and serves /v1/completions and /v1/chat/completions with continuous
// batching.
#include <ATen/Parallel.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "worker/serve/http_server.h"
#include "worker/serve/model_loader.h"

namespace {
ps::serve::HttpFrontend* g_frontend = nullptr;
// An `auto | on | off` option's value: `when_auto` decides auto.
bool Chosen(const std::string& choice, bool when_auto) {
  return choice == "on" || (choice == "auto" && when_auto);
}
void OnSignal(int) {
  if (g_frontend) g_frontend->Stop();
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"psserve: OpenAI-compatible completions server for dense and 2:4 models"};
  ps::serve::LoadSpec spec;
  ps::serve::HttpOptions http;
  ps::serve::EngineOptions eng;
  ps::serve::SchedulerOptions sched;
  int threads = 0;
  std::string attention = "auto";
  std::string cuda_graphs = "auto";
  std::string fused_ops = "auto";
  std::string warmup = "auto";
  app.add_option("--model", spec.model,
                 "model directory: Hugging Face, compressed-tensors sparse-24-bitmask, native "
                 "packed, or masks (with --base-model)");
  app.add_option("--base-model", spec.base_model, "dense base model of a masks artifact");
  app.add_option("--random-shape", spec.random_shape,
                 "serve random 2:4 weights of a named shape instead (llama2-7b; benchmarks)");
  app.add_option("--layers", spec.random_layers, "layers of --random-shape (default: all)");
  app.add_option("--tokenizer", spec.tokenizer, "tokenizer directory (default: the model's)");
  app.add_option("--device", spec.device, "cpu | cuda")->capture_default_str();
  app.add_option("--dtype", spec.dtype, "fp32 | bf16 | fp16")->capture_default_str();
  app.add_option("--sparse", spec.sparse,
                 "auto | on | off: 2:4 targets on the GPU's 2:4 kernels (auto: when 2:4)")
      ->capture_default_str();
  app.add_option("--scratch", spec.scratch, "where packed forms are unpacked while loading");
  app.add_option("--host", http.host)->capture_default_str();
  app.add_option("--port", http.port, "0: any free port (printed)")->capture_default_str();
  app.add_option("--max-batch", eng.max_batch, "requests decoded together (KV slots)")
      ->capture_default_str();
  app.add_option("--max-model-len", eng.max_len, "positions per request (prompt + completion)")
      ->capture_default_str();
  app.add_option("--max-waiting", sched.max_waiting, "queued requests before 429")
      ->capture_default_str();
  app.add_option("--attention", attention,
                 "auto | exact | batched | kernel: per-request attention (exact, CPU default), "
                 "one masked call per layer (batched), or the decode attention kernel, which "
                 "reads only the keys each request sees (kernel, GPU default)")
      ->check(CLI::IsMember({"auto", "exact", "batched", "kernel"}))
      ->capture_default_str();
  app.add_option("--cuda-graphs", cuda_graphs,
                 "auto | on | off: replay each decode step shape as a CUDA graph (auto: on cuda "
                 "with batched attention)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--fused-ops", fused_ops,
                 "auto | on | off: each decode step's residual add + RMSNorm, RoPE + KV write "
                 "and SiLU-multiply as one GPU kernel each (auto: on cuda without exact "
                 "attention; bf16/fp16)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--warmup", warmup,
                 "auto | on | off: before listening, run each decode step shape once (graph "
                 "captures, 2:4 path and kernel timings), so no request waits for them (auto: "
                 "with CUDA graphs)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--threads", threads, "CPU threads for LibTorch (default: one per core)");
  CLI11_PARSE(app, argc, argv);
  try {
    if (threads > 0) at::set_num_threads(threads);
    eng.exact_attention = attention == "exact" || (attention == "auto" && spec.device == "cpu");
    eng.decode_kernel = attention == "kernel" || (attention == "auto" && spec.device == "cuda");
    const bool batched_cuda = spec.device == "cuda" && !eng.exact_attention;
    eng.cuda_graphs = Chosen(cuda_graphs, batched_cuda);
    eng.fused_ops = Chosen(fused_ops, batched_cuda);
    auto loaded = ps::serve::LoadModel(spec);
    eng.max_len = std::min<int64_t>(eng.max_len, loaded.model->config().max_position_embeddings);
    ps::serve::Engine engine(loaded.model, eng);
    nlohmann::json warmed = nullptr;
    if (Chosen(warmup, eng.cuda_graphs)) {
      const auto t0 = std::chrono::steady_clock::now();
      const int64_t steps = engine.WarmUp([](int64_t done, int64_t total) {
        if (done == total || done % std::max<int64_t>(1, total / 10) == 0)
          std::cerr << "psserve: warm-up " << done << "/" << total << " decode step shapes"
                    << std::endl;
      });
      warmed = {{"steps", steps},
                {"seconds",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
    }
    ps::serve::ServeMetrics metrics;
    ps::serve::Scheduler scheduler(engine, *loaded.tokenizer, metrics, sched);
    ps::serve::ServedModel served{loaded.name, loaded.artifact, loaded.tokenizer.get(),
                                  ps::serve::ChatTemplateOf(loaded.tokenizer_dir), eng.max_len};
    http.threads = static_cast<int>(eng.max_batch + sched.max_waiting + 8);
    ps::serve::HttpFrontend frontend(scheduler, metrics, served, http);
    const int port = frontend.Bind();
    nlohmann::json ready = {{"listening", http.host + ":" + std::to_string(port)},
                            {"port", port},
                            {"model", loaded.name},
                            {"artifact", loaded.artifact},
                            {"device", spec.device},
                            {"dtype", spec.dtype},
                            {"max_batch", eng.max_batch},
                            {"max_model_len", eng.max_len},
                            {"kv_cache_bytes", engine.kv().bytes()},
                            {"attention", eng.exact_attention ? "exact"
                                          : eng.decode_kernel ? "kernel"
                                                              : "batched"},
                            {"cuda_graphs", eng.cuda_graphs},
                            {"fused_ops", engine.fused_ops()},
                            {"chat_template", ps::serve::ChatTemplateName(served.chat_template)}};
    if (!loaded.sparse.is_null()) ready["sparse"] = loaded.sparse;
    if (!warmed.is_null()) ready["warmup"] = warmed;
    std::cout << ready.dump() << std::endl;
    g_frontend = &frontend;
    signal(SIGINT, OnSignal);
    signal(SIGTERM, OnSignal);
    frontend.Listen();
    g_frontend = nullptr;
    scheduler.Stop();
  } catch (const std::exception& e) {
    std::cerr << "psserve: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}

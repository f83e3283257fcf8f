// pstool bench-sparse, end to end (sparse_e2e_bench.h): the whole model, dense vs 2:4, on one GPU.
//
// The same model object runs both: first with its dense (2:4-masked) weights, then after
// SparsifyModel has moved every 2:4 target into Sparse24Linear ops and released the dense weights.
// Phases, each timed with CUDA events after warm-up runs (which also build cuSPARSELt's plans):
//   prefill   one sequence of --prefill tokens through the model, filling a fresh KV cache;
//   decode    per batch size B: a prompt of --prompt tokens, then --steps greedy steps, each
//             feeding the argmax of the last logits back (eager LibTorch, as a simple server
//             would run it; tokens/s = B * steps / time);
//   decode_graph  the same greedy generation (--steps tokens after the prompt) captured as one
//             CUDA graph and replayed --graph-iters times: the decode loop without per-op launch
//             overhead (what a graph-based server sees); its tokens are checked against eager.
// Memory: bytes of all parameters and packed forms (weights), and the allocator's peak during
// each phase. One JSON line per result.
#include "worker/tools/sparse_e2e_bench.h"

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/sparse/random_model.h"
#include "worker/sparse/sparse_model.h"

namespace ps {
namespace {

using sparse::Sparse24Linear;

struct E2eArgs {
  std::string model, shapes;
  int64_t layers = -1;
  torch::ScalarType dtype = torch::kBFloat16;
  int64_t prefill = 2048, prompt = 128, steps = 32;
  std::vector<int64_t> batches = {1, 16};
  int iters = 5, graph_iters = 5;
  std::string forms = "both";  // both | native | cusparselt
  bool graph = true;
  uint64_t seed = 0;
};

int64_t Allocated() {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device())
      .allocated_bytes[0]  // StatType::AGGREGATE
      .current;
}
int64_t PeakAllocated() {
  return c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device())
      .allocated_bytes[0]
      .peak;
}
void ResetPeak() {
  torch::cuda::synchronize();
  c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
}

// Milliseconds of fn on the current stream, CUDA events.
double EventMs(const std::function<void()>& fn) {
  at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
  a.record();
  fn();
  b.record();
  b.synchronize();
  return a.elapsed_time(b);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Parameters that still hold storage plus every packed form.
int64_t WeightBytes(LlamaForCausalLM& m) {
  int64_t bytes = 0;
  for (const auto& p : m.parameters()) bytes += p.nbytes();
  for (const auto& l : m.TargetLinears())
    if (auto* op = dynamic_cast<sparse::Sparse24Op*>(l->op().get()))
      bytes += op->linear().GpuBytes();
  return bytes;
}

class Bench {
 public:
  Bench(LlamaForCausalLM& m, const E2eArgs& a) : m_(m), a_(a) {
    const auto opts = torch::dtype(torch::kInt64).device(m.device());
    const int64_t vocab = m.config().vocab_size;
    torch::manual_seed(a.seed + 1);
    prefill_ids_ = torch::randint(vocab, {1, a.prefill}, opts);
    for (int64_t b : a.batches) prompts_[b] = torch::randint(vocab, {b, a.prompt}, opts);
  }

  // One result line per phase, tagged with `model` ("dense" / "2:4").
  std::vector<nlohmann::json> Run(const std::string& tag) {
    torch::NoGradGuard no_grad;
    std::vector<nlohmann::json> out;
    {
      ResetPeak();
      auto run = [&] {
        KvCache cache;
        (void)m_.forward(prefill_ids_, &cache);
      };
      run();  // warm-up (plans, cuBLAS heuristics, allocator)
      std::vector<double> t;
      for (int i = 0; i < a_.iters; ++i) t.push_back(EventMs(run));
      const double ms = Median(t);
      out.push_back({{"model", tag},
                     {"phase", "prefill"},
                     {"tokens", a_.prefill},
                     {"ms", ms},
                     {"tokens_per_s", a_.prefill / ms * 1e3},
                     {"peak_allocated_bytes", PeakAllocated()}});
    }
    for (int64_t b : a_.batches) {
      ResetPeak();
      const torch::Tensor& prompt = prompts_[b];
      std::vector<torch::Tensor> generated;
      auto run = [&](bool keep) {
        KvCache cache;
        auto logits = m_.forward(prompt, &cache);
        torch::Tensor next = logits.select(1, -1).argmax(-1, true);
        return EventMs([&] {
          for (int64_t s = 0; s < a_.steps; ++s) {
            if (keep) generated.push_back(next);
            next = m_.forward(next, &cache).select(1, -1).argmax(-1, true);
          }
        });
      };
      run(false);  // warm-up
      std::vector<double> t;
      for (int i = 0; i < std::max(1, a_.iters / 2); ++i) t.push_back(run(i == 0));
      const double ms = Median(t);
      tokens_[b] = torch::cat(generated, 1).to(torch::kCPU);
      out.push_back({{"model", tag},
                     {"phase", "decode"},
                     {"batch", b},
                     {"prompt", a_.prompt},
                     {"steps", a_.steps},
                     {"ms_per_step", ms / a_.steps},
                     {"tokens_per_s", b * a_.steps / ms * 1e3},
                     {"peak_allocated_bytes", PeakAllocated()}});
      if (a_.graph) out.push_back(GraphDecode(tag, b));
    }
    return out;
  }

  // Generated tokens of the last Run, per batch size (for dense vs 2:4 agreement).
  const std::map<int64_t, torch::Tensor>& tokens() const { return tokens_; }

 private:
  // The decode step as LlamaForCausalLM::forward runs it, from its public layer-at-a-time
  // pieces, so that the RoPE tables (computed on the host) are made outside the graph.
  torch::Tensor Step(const torch::Tensor& ids, const RopeTables& rope, KvCache& cache) {
    auto h = m_.Embed(ids);
    for (int64_t i = 0; i < m_.num_layers(); ++i)
      h = m_.layer(i).forward(h, rope, &cache.layers[static_cast<size_t>(i)]);
    return m_.Logits(m_.FinalNorm(h));
  }

  // The whole greedy generation of --steps tokens after the prompt, captured as one CUDA graph
  // (the cache grows by torch::cat, so every step has its own shapes, all known at capture) and
  // replayed: the decode loop without LibTorch's per-op launch cost.
  nlohmann::json GraphDecode(const std::string& tag, int64_t b) {
    nlohmann::json j{{"model", tag},
                     {"phase", "decode_graph"},
                     {"batch", b},
                     {"prompt", a_.prompt},
                     {"steps", a_.steps}};
    try {
      ResetPeak();
      KvCache base;
      const torch::Tensor first =
          m_.forward(prompts_[b], &base).select(1, -1).argmax(-1, true).contiguous();
      std::vector<RopeTables> ropes;  // made on the host: outside the graph
      for (int64_t s = 0; s < a_.steps; ++s) ropes.push_back(m_.Rope(base.length() + s, 1));
      auto generate = [&] {
        KvCache c = base;  // each step writes new cache tensors; `base` is only read
        torch::Tensor next = first;
        std::vector<torch::Tensor> out;
        for (int64_t s = 0; s < a_.steps; ++s) {
          next = Step(next, ropes[static_cast<size_t>(s)], c).select(1, -1).argmax(-1, true);
          out.push_back(next);
        }
        return torch::cat(out, 1);
      };
      torch::cuda::synchronize();  // `base` and `first` were made on the default stream
      c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
      c10::cuda::CUDAStreamGuard guard(side);
      const torch::Tensor eager = generate();  // warm-up on the capture stream
      side.synchronize();
      at::cuda::CUDAGraph graph;
      torch::Tensor tokens;
      graph.capture_begin();
      try {
        tokens = generate();
      } catch (...) {
        try {  // leave the stream out of capture mode, so the rest of the bench can run
          graph.capture_end();
        } catch (...) {
        }
        throw;
      }
      graph.capture_end();
      graph.replay();
      std::vector<double> t;
      for (int i = 0; i < a_.graph_iters; ++i) t.push_back(EventMs([&] { graph.replay(); }));
      const double ms = Median(t);
      j["ms_per_step"] = ms / a_.steps;
      j["tokens_per_s"] = b * a_.steps / ms * 1e3;
      j["peak_allocated_bytes"] = PeakAllocated();
      // The replayed graph must generate what the eager loop generated.
      j["graph_tokens_equal_eager"] = tokens.eq(eager).all().item<bool>();
    } catch (const std::exception& e) {
      j["error"] = e.what();
    }
    return j;
  }

  LlamaForCausalLM& m_;
  const E2eArgs& a_;
  torch::Tensor prefill_ids_;
  std::map<int64_t, torch::Tensor> prompts_;
  std::map<int64_t, torch::Tensor> tokens_;
};

E2eArgs Parse(const std::vector<std::string>& args) {
  E2eArgs a;
  auto list = [](const std::string& s) {
    std::vector<int64_t> v;
    std::stringstream ss(s);
    std::string x;
    while (std::getline(ss, x, ',')) v.push_back(std::stoll(x));
    return v;
  };
  for (size_t i = 0; i < args.size(); ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw Error(args[i] + " needs a value");
      return args[++i];
    };
    const std::string& k = args[i];
    if (k == "--model")
      a.model = next();
    else if (k == "--shapes")
      a.shapes = next();
    else if (k == "--layers")
      a.layers = std::stoll(next());
    else if (k == "--dtype")
      a.dtype = ParseComputeDType(next());
    else if (k == "--prefill" || k == "--tokens")
      a.prefill = std::stoll(next());
    else if (k == "--prompt")
      a.prompt = std::stoll(next());
    else if (k == "--steps")
      a.steps = std::stoll(next());
    else if (k == "--batch")
      a.batches = list(next());
    else if (k == "--iters")
      a.iters = std::stoi(next());
    else if (k == "--graph-iters")
      a.graph_iters = std::stoi(next());
    else if (k == "--forms")
      a.forms = next();
    else if (k == "--no-graph")
      a.graph = false;
    else if (k == "--seed")
      a.seed = std::stoull(next());
    else
      throw Error("bench-sparse: unknown argument '" + k + "' (see --help)");
  }
  if (a.model.empty() == a.shapes.empty()) throw Error("give exactly one of --model DIR, --shapes");
  if (a.forms != "both" && a.forms != "native" && a.forms != "cusparselt")
    throw Error("--forms must be both, native or cusparselt");
  if (a.dtype != torch::kBFloat16 && a.dtype != torch::kFloat16)
    throw Error("--dtype must be bf16 or fp16 (the 2:4 kernels' types)");
  if (a.prefill < 1 || a.prompt < 1 || a.steps < 1 || a.iters < 1 || a.batches.empty())
    throw Error("--prefill, --prompt, --steps, --iters and --batch must be positive");
  return a;
}

}  // namespace

const char* kSparseE2eHelp =
    "pstool bench-sparse (--model DIR | --shapes llama2-7b [--layers N]) [--dtype bf16|fp16]\n"
    "    [--prefill 2048] [--batch 1,16] [--prompt 128] [--steps 32] [--iters 5]\n"
    "    [--graph-iters 5] [--no-graph] [--forms both|native|cusparselt] [--seed 0]\n"
    "  End to end on one GPU: the model with its dense (2:4-masked) weights, then with every\n"
    "  2:4 target on the sparse paths and the dense weights released. JSON lines.\n"
    "pstool bench-sparse --linears (--model DIR | --shapes llama2-7b) [...]  the linear stack "
    "only\n";

int RunSparseE2e(const std::vector<std::string>& args) {
  const E2eArgs a = Parse(args);
  if (!torch::cuda::is_available()) throw Error("bench-sparse needs a CUDA device");
  torch::NoGradGuard no_grad;
  const auto dev = torch::Device(torch::kCUDA, 0);
  std::shared_ptr<LlamaForCausalLM> model;
  if (!a.model.empty()) {
    model = LoadLlama(a.model, {a.dtype, dev});
  } else {
    model = sparse::RandomSparseModel(sparse::NamedShapeConfig(a.shapes, a.layers),
                                      torch::dtype(a.dtype).device(dev), a.seed);
  }
  torch::cuda::synchronize();
  c10::cuda::CUDACachingAllocator::emptyCache();
  const int64_t dense_weights = WeightBytes(*model);
  const int64_t dense_allocated = Allocated();
  const auto& c = model->config();
  std::cout << nlohmann::json{{"event", "bench-sparse-e2e"},
                              {"source", a.model.empty() ? a.shapes : a.model},
                              {"layers", c.num_hidden_layers},
                              {"hidden", c.hidden_size},
                              {"intermediate", c.intermediate_size},
                              {"vocab", c.vocab_size},
                              {"dtype", a.dtype == torch::kBFloat16 ? "bf16" : "fp16"},
                              {"forms", a.forms},
                              {"device", torch::cuda::device_count() > 0 ? "cuda:0" : "?"}}
                   .dump()
            << std::endl;

  // A fixed batch whose logits are compared dense vs 2:4 (the full check is sparse_model_check).
  torch::manual_seed(a.seed + 2);
  const auto probe = torch::randint(c.vocab_size, {2, 64}, torch::dtype(torch::kInt64).device(dev));
  const torch::Tensor dense_logits = model->forward(probe).to(torch::kFloat);

  Bench bench(*model, a);
  std::vector<nlohmann::json> dense = bench.Run("dense");
  for (const auto& j : dense) std::cout << j.dump() << std::endl;
  const auto dense_tokens = bench.tokens();

  sparse::SparsifyOptions so;
  so.keep_native = a.forms != "cusparselt";
  so.keep_cusparselt = a.forms != "native";
  const auto rep = sparse::SparsifyModel(*model, so);
  if (rep.linears == 0)
    throw Error("no 2:4-sparse q/k/v/o/gate/up/down weights in this model (prune it first)");
  torch::cuda::synchronize();
  const int64_t sparse_weights = WeightBytes(*model);
  const int64_t sparse_allocated = Allocated();
  const auto sparse_logits = model->forward(probe).to(torch::kFloat);
  const double scale = dense_logits.abs().max().item<double>();
  std::cout << nlohmann::json{{"event", "sparsified"},
                              {"linears", rep.linears},
                              {"skipped", rep.skipped},
                              {"shared_values", rep.shared_values},
                              {"target_dense_bytes", rep.dense_weight_bytes},
                              {"target_native_bytes", rep.native_bytes},
                              {"target_cusparselt_bytes", rep.cusparselt_bytes},
                              {"model_weight_bytes_dense", dense_weights},
                              {"model_weight_bytes_sparse", sparse_weights},
                              {"model_weight_ratio", double(sparse_weights) / dense_weights},
                              {"target_weight_ratio",
                               double(rep.native_bytes + rep.cusparselt_bytes) /
                                   std::max<int64_t>(1, rep.dense_weight_bytes)},
                              {"allocated_bytes_dense", dense_allocated},
                              {"allocated_bytes_sparse", sparse_allocated},
                              {"probe_logits_max_abs_diff_rel",
                               (sparse_logits - dense_logits).abs().max().item<double>() /
                                   (scale > 0 ? scale : 1.0)},
                              {"probe_argmax_agreement", sparse_logits.argmax(-1)
                                                             .eq(dense_logits.argmax(-1))
                                                             .to(torch::kFloat)
                                                             .mean()
                                                             .item<double>()}}
                   .dump()
            << std::endl;

  std::vector<nlohmann::json> sp = bench.Run("2:4");
  for (size_t i = 0; i < sp.size(); ++i) {
    auto& j = sp[i];
    const auto& d = dense[i];
    if (j.contains("tokens_per_s") && d.contains("tokens_per_s"))
      j["speedup"] = j["tokens_per_s"].get<double>() / d["tokens_per_s"].get<double>();
    if (j.contains("peak_allocated_bytes") && d.contains("peak_allocated_bytes"))
      j["peak_vs_dense"] =
          j["peak_allocated_bytes"].get<double>() / d["peak_allocated_bytes"].get<double>();
    if (j["phase"] == "decode") {
      const int64_t b = j["batch"].get<int64_t>();
      j["greedy_tokens_equal_to_dense"] =
          bench.tokens().at(b).eq(dense_tokens.at(b)).to(torch::kFloat).mean().item<double>();
    }
    std::cout << j.dump() << std::endl;
  }
  return 0;
}

}  // namespace ps

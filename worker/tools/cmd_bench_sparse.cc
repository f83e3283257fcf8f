// pstool bench-sparse: dense vs 2:4 on the GPU (built only with a CUDA LibTorch). Without
// --linears, the whole model end to end (sparse_e2e_bench.cc). With --linears, only the linear
// stack: for every decoder layer q, k, v, o, gate, up, down in order, as a forward pass runs them,
// at prefill size (--tokens rows) and decode sizes (--batch rows), reporting tokens/s of that
// stack and the weight memory each form needs (attention, norms, embeddings and lm_head not run).
//   pstool bench-sparse --linears --model DIR         a 2:4-pruned checkpoint (bf16/fp16 targets)
//   pstool bench-sparse --linears --shapes llama2-7b  random 2:4 weights of Llama-2-7B's shapes
//   [--layers N] [--tokens 2048] [--batch 1,16] [--iters 20]
#include <ATen/cuda/CUDAEvent.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/safetensors.h"
#include "worker/io/tensor_io.h"
#include "worker/pack/targets.h"
#include "worker/sparse/sparse24_gemv.h"
#include "worker/sparse/sparse24_linear.h"
#include "worker/tools/command.h"
#include "worker/tools/sparse_e2e_bench.h"

namespace ps {
namespace {

using sparse::Sparse24Linear;

struct Layer {
  std::string name;
  torch::Tensor dense;  // CUDA [out, in]
  std::unique_ptr<Sparse24Linear> sparse;
};

// Llama-2-7B: hidden 4096, MLP 11008, 32 layers, MHA.
std::vector<std::pair<std::string, std::vector<int64_t>>> Llama7bShapes(int layers) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    for (const char* n :
         {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"})
      out.push_back({p + n + ".weight", {4096, 4096}});
    out.push_back({p + "mlp.gate_proj.weight", {11008, 4096}});
    out.push_back({p + "mlp.up_proj.weight", {11008, 4096}});
    out.push_back({p + "mlp.down_proj.weight", {4096, 11008}});
  }
  return out;
}

int LayerOf(const std::string& name) {
  const auto p = name.find("layers.");
  return p == std::string::npos ? -1 : std::atoi(name.c_str() + p + 7);
}

// Median milliseconds of `fn` over `iters` calls (after 2 warm-ups), CUDA events.
double TimeMs(const std::function<void()>& fn, int iters) {
  for (int i = 0; i < 2; ++i) fn();
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    at::cuda::CUDAEvent a(cudaEventDefault), b(cudaEventDefault);
    a.record();
    fn();
    b.record();
    b.synchronize();
    t.push_back(a.elapsed_time(b));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

int RunLinearStack(const std::vector<std::string>& args) {
  std::string model, shapes;
  int layers = -1, iters = 20;
  int64_t tokens = 2048;
  std::vector<int64_t> batches = {1, 16};
  for (size_t i = 0; i < args.size(); ++i) {
    auto next = [&]() -> std::string {
      if (i + 1 >= args.size()) throw Error(args[i] + " needs a value");
      return args[++i];
    };
    if (args[i] == "--model")
      model = next();
    else if (args[i] == "--shapes")
      shapes = next();
    else if (args[i] == "--layers")
      layers = std::stoi(next());
    else if (args[i] == "--tokens")
      tokens = std::stoll(next());
    else if (args[i] == "--iters")
      iters = std::stoi(next());
    else if (args[i] == "--batch") {
      batches.clear();
      std::stringstream ss(next());
      std::string b;
      while (std::getline(ss, b, ',')) batches.push_back(std::stoll(b));
    } else {
      throw Error("unknown argument '" + args[i] + "' (see --help)");
    }
  }
  if (model.empty() == shapes.empty()) throw Error("give exactly one of --model DIR, --shapes");
  if (!shapes.empty() && shapes != "llama2-7b") throw Error("--shapes: only llama2-7b is known");
  if (!torch::cuda::is_available()) throw Error("bench-sparse needs a CUDA device");
  torch::NoGradGuard no_grad;
  const auto dev = torch::Device(torch::kCUDA);
  std::vector<Layer> stack;
  if (!model.empty()) {
    auto ckpt = Checkpoint::Open(model);
    for (const auto& name : ckpt.Names()) {
      if (!pack::IsPruneTarget(name)) continue;
      if (layers >= 0 && LayerOf(name) >= layers) continue;
      stack.push_back({name, TensorView(ckpt, name).to(dev), nullptr});
    }
    // Forward order: by layer, then q, k, v, o, gate, up, down.
    auto rank = [](const std::string& n) {
      const char* order[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                             "gate_proj", "up_proj", "down_proj"};
      for (int i = 0; i < 7; ++i)
        if (n.find(order[i]) != std::string::npos) return i;
      return 7;
    };
    std::stable_sort(stack.begin(), stack.end(), [&](const Layer& a, const Layer& b) {
      return std::make_pair(LayerOf(a.name), rank(a.name)) <
             std::make_pair(LayerOf(b.name), rank(b.name));
    });
  } else {
    torch::manual_seed(0);
    for (auto& [name, shape] : Llama7bShapes(layers < 0 ? 32 : layers))
      stack.push_back({name,
                       sparse::PruneTwoFour(
                           torch::randn(shape, torch::dtype(torch::kBFloat16).device(dev)) * 0.02),
                       nullptr});
  }
  if (stack.empty()) throw Error("no q/k/v/o/gate/up/down weights to run");
  int64_t dense_bytes = 0, native_bytes = 0, cslt_bytes = 0, shared = 0;
  for (auto& l : stack) {
    l.sparse = std::make_unique<Sparse24Linear>(l.dense, true, Sparse24Linear::HasCusparselt());
    dense_bytes += l.dense.nbytes();
    native_bytes += l.sparse->NativeBytes();
    cslt_bytes += l.sparse->CusparseltBytes();
    shared += l.sparse->SharesValues() ? 1 : 0;
  }
  const auto dtype = stack[0].dense.scalar_type();
  std::cout << nlohmann::json{{"event", "bench-sparse"},
                              {"source", model.empty() ? shapes : model},
                              {"linears", stack.size()},
                              {"dense_weight_bytes", dense_bytes},
                              {"native_weight_bytes", native_bytes},
                              {"native_shares_cusparselt_values", shared},
                              {"cusparselt_weight_bytes", cslt_bytes},
                              {"native_vs_dense", double(native_bytes) / dense_bytes},
                              {"cusparselt_vs_dense", double(cslt_bytes) / dense_bytes}}
                   .dump()
            << std::endl;
  auto run = [&](int64_t m, int mode) {
    std::map<int64_t, torch::Tensor> xs;  // one input per in_features
    for (auto& l : stack)
      if (!xs.count(l.dense.size(1)))
        xs[l.dense.size(1)] = torch::randn({m, l.dense.size(1)}, torch::dtype(dtype).device(dev));
    return TimeMs(
        [&] {
          for (auto& l : stack) {
            const auto& x = xs[l.dense.size(1)];
            if (mode == 0) (void)torch::matmul(x, l.dense.t());
            if (mode == 1) (void)l.sparse->Forward(x, Sparse24Linear::Path::kDecode);
            if (mode == 2) (void)l.sparse->Forward(x, Sparse24Linear::Path::kCusparselt);
            if (mode == 3) (void)l.sparse->Forward(x, Sparse24Linear::Path::kDecodeMma);
            if (mode == 4) (void)l.sparse->Forward(x, Sparse24Linear::Path::kUnpackDense);
          }
        },
        iters);
  };
  std::vector<std::pair<std::string, int64_t>> cases = {{"prefill", tokens}};
  for (auto b : batches) cases.push_back({"decode", b});
  for (const auto& [kind, m] : cases) {
    nlohmann::json j{{"phase", kind}, {"rows", m}};
    const double dense = run(m, 0);
    j["dense_ms"] = dense;
    j["dense_tokens_per_s"] = m / dense * 1e3;
    if (m <= sparse::kDecodeMaxM) {
      const double d = run(m, 1);
      j["decode_kernel_ms"] = d;
      j["decode_kernel_tokens_per_s"] = m / d * 1e3;
      j["decode_kernel_speedup"] = dense / d;
      const double t = run(m, 3);
      j["mma_kernel_ms"] = t;
      j["mma_kernel_tokens_per_s"] = m / t * 1e3;
      j["mma_kernel_speedup"] = dense / t;
    } else {
      const double u = run(m, 4);
      j["unpack_dense_ms"] = u;
      j["unpack_dense_speedup"] = dense / u;
    }
    if (Sparse24Linear::HasCusparselt()) {
      const double c = run(m, 2);
      j["cusparselt_ms"] = c;
      j["cusparselt_tokens_per_s"] = m / c * 1e3;
      j["cusparselt_speedup"] = dense / c;
    }
    std::cout << j.dump() << std::endl;
  }
  return 0;
}

int RunBenchSparse(const std::vector<std::string>& args) {
  std::vector<std::string> rest;
  bool linears = false, help = false;
  for (const auto& a : args) {
    if (a == "--linears")
      linears = true;
    else if (a == "--help")
      help = true;
    else
      rest.push_back(a);
  }
  if (help) {
    std::cout << kSparseE2eHelp
              << "    --linears: [--layers N] [--tokens 2048] [--batch 1,16] [--iters 20]\n";
    return 0;
  }
  return linears ? RunLinearStack(rest) : RunSparseE2e(rest);
}

const RegisterCommand kRegister(
    "bench-sparse",
    {"dense vs 2:4 inference of a pruned model on the GPU (end to end, or --linears)", nullptr,
     RunBenchSparse});

}  // namespace
}  // namespace ps

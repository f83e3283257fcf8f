// Dense cuBLAS (torch::matmul) against our 2:4 paths on Llama-2-7B linear shapes:
//   q/k/v/o 4096x4096, gate/up 11008x4096, down 4096x11008 (out x in),
//   M (tokens) in {1, 2, 4, 8, 16, 128, 1024, 4096, 16384}, bf16 and fp16.
// Paths: our decode kernels (native packed weights: CUDA-core "decode" up to 16 rows, tensor-core
// "mma" up to 32; the mma.sp layout: sparse tensor-core "sparse_mma" up to 32), cuSPARSELt (any
// M) and, above 32 rows, the native form unpacked to a dense scratch weight + cuBLAS ("unpack",
// the prefill path when only the native form is kept).
// Timing: every timed call starts with a cold L2 (a 256 MiB buffer is written in between, not
// timed), as in decoding where the weights stream from HBM; CUDA events around each call, the
// median of `iters` calls. One JSON line per (dtype, shape, M), with speedups over dense and the
// weight bytes each path keeps on the GPU.
//   sparse_bench [--iters N] [--ms 1,16,...] [--dtype bf16|fp16] [--no-cusparselt]
//                [--shapes qkvo,gate_up,down,qkv,gate_up_fused]
// qkv (12288x4096) and gate_up_fused (22016x4096) are the fused projections a server runs as one
// layer (q, k and v; gate and up); they are measured only when named.
// cuSPARSELt chooses its algorithm per shape on first use and writes one JSON line to stderr
// (PS_CUSPARSELT_SEARCH / PS_CUSPARSELT_ALG override the choice: docs/sparse-inference.md).
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "worker/sparse/sparse24_gemv.h"
#include "worker/sparse/sparse24_linear.h"
#include "worker/sparse/sparse24_spmma.h"

namespace {

using ps::sparse::Sparse24Linear;

// Median GPU time in microseconds of `fn`, each call after an L2 flush.
double TimeUs(const std::function<void()>& fn, int iters, torch::Tensor& flush) {
  for (int i = 0; i < 3; ++i) fn();  // warm-up (and the cuSPARSELt plan search)
  std::vector<double> t;
  for (int i = 0; i < iters; ++i) {
    flush.fill_(i & 1);
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record();
    fn();
    stop.record();
    stop.synchronize();
    t.push_back(1000.0 * start.elapsed_time(stop));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

std::vector<int64_t> ParseList(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) v.push_back(std::stoll(item));
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int iters = 30;
  std::vector<int64_t> ms = {1, 2, 4, 8, 16, 128, 1024, 4096, 16384};
  std::string only;  // "bf16" or "fp16"
  std::string shape_names = "qkvo,gate_up,down";
  bool use_cslt = Sparse24Linear::HasCusparselt();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--no-cusparselt") use_cslt = false;
    if (i + 1 >= argc) continue;
    if (a == "--iters") {
      iters = std::stoi(argv[++i]);
    } else if (a == "--ms") {
      ms = ParseList(argv[++i]);
    } else if (a == "--dtype") {
      only = argv[++i];
    } else if (a == "--shapes") {
      shape_names = argv[++i];
    }
  }
  if (!torch::cuda::is_available()) {
    std::cerr << "sparse_bench: no CUDA device\n";
    return 2;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::cout << nlohmann::json{{"device", prop.name},
                              {"torch", TORCH_VERSION},
                              {"cusparselt", Sparse24Linear::HasCusparselt()},
                              {"iters", iters},
                              {"timing", "median of cold-L2 calls, CUDA events"}}
                   .dump()
            << std::endl;
  torch::NoGradGuard no_grad;
  auto flush = torch::empty({256 << 20}, torch::dtype(torch::kUInt8).device(torch::kCUDA));
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape known[] = {{"qkvo", 4096, 4096},
                         {"gate_up", 11008, 4096},
                         {"down", 4096, 11008},
                         {"qkv", 3 * 4096, 4096},
                         {"gate_up_fused", 2 * 11008, 4096}};
  std::vector<Shape> shapes;
  {
    std::stringstream ss(shape_names);
    std::string name;
    while (std::getline(ss, name, ',')) {
      const auto it = std::find_if(std::begin(known), std::end(known),
                                   [&](const Shape& s) { return name == s.name; });
      if (it == std::end(known)) {
        std::cerr << "sparse_bench: unknown shape '" << name
                  << "' (--shapes takes qkvo, gate_up, down, qkv, gate_up_fused)\n";
        return 2;
      }
      shapes.push_back(*it);
    }
  }
  for (auto dtype : {torch::kBFloat16, torch::kFloat16}) {
    if (!only.empty() && only != (dtype == torch::kBFloat16 ? "bf16" : "fp16")) continue;
    for (const Shape& s : shapes) {
      auto opts = torch::dtype(dtype).device(torch::kCUDA);
      torch::manual_seed(1);
      const auto w = ps::sparse::PruneTwoFour(torch::randn({s.n, s.k}, opts) * 0.02);
      const auto wt = w.t();
      Sparse24Linear lin(w, /*keep_native=*/true, use_cslt);
      for (int64_t m : ms) {
        const auto x = torch::randn({m, s.k}, opts);
        const int it = m >= 4096 ? std::max(5, iters / 3) : iters;
        nlohmann::json j{{"dtype", dtype == torch::kBFloat16 ? "bf16" : "fp16"},
                         {"layer", s.name},
                         {"n", s.n},
                         {"k", s.k},
                         {"m", m},
                         {"dense_weight_bytes", w.nbytes()},
                         {"native_weight_bytes", lin.NativeBytes()},
                         {"sparse_mma_weight_bytes", lin.SparseMmaBytes()},
                         {"cusparselt_weight_bytes", lin.CusparseltBytes()},
                         {"native_shares_cusparselt_values", lin.SharesValues()}};
        const double dense = TimeUs([&] { (void)torch::matmul(x, wt); }, it, flush);
        j["dense_us"] = dense;
        j["dense_tflops"] = 2.0 * m * s.n * s.k / dense * 1e-6;
        if (m <= ps::sparse::kMmaMaxM) {
          // Bytes the decode kernels read: kept values + metadata (even when the values live in
          // cuSPARSELt's buffer), plus x and y.
          const double native_read = s.n * s.k / 2.0 * w.element_size() + s.n * s.k / 8.0;
          j["dense_gbps"] = (w.nbytes() + 2.0 * m * (s.k + s.n)) / dense * 1e-3;
          if (m <= ps::sparse::kDecodeMaxM) {
            const double d =
                TimeUs([&] { (void)lin.Forward(x, Sparse24Linear::Path::kDecode); }, it, flush);
            j["decode_us"] = d;
            j["decode_speedup"] = dense / d;
            j["decode_gbps"] = (native_read + 2.0 * m * (s.k + s.n)) / d * 1e-3;
          }
          const double t =
              TimeUs([&] { (void)lin.Forward(x, Sparse24Linear::Path::kDecodeMma); }, it, flush);
          j["mma_us"] = t;
          j["mma_speedup"] = dense / t;
          j["mma_gbps"] = (native_read + 2.0 * m * (s.k + s.n)) / t * 1e-3;
          // The sparse tensor-core kernel reads the same kept values and metadata (reordered).
          const double sp =
              TimeUs([&] { (void)lin.Forward(x, Sparse24Linear::Path::kSparseMma); }, it, flush);
          j["sparse_mma_us"] = sp;
          j["sparse_mma_speedup"] = dense / sp;
          j["sparse_mma_gbps"] = (native_read + 2.0 * m * (s.k + s.n)) / sp * 1e-3;
          // Each of its variants (kSparseMma above runs the one its timing kept).
          for (int v = 0; v < ps::sparse::kSpmmaVariants; ++v) {
            if (!lin.SparseMmaVariantRuns(m, v)) continue;
            const double tv = TimeUs([&] { (void)lin.SparseMmaVariant(x, v); }, it, flush);
            j["sparse_mma_v" + std::to_string(v) + "_speedup"] = dense / tv;
          }
        } else {
          const double u =
              TimeUs([&] { (void)lin.Forward(x, Sparse24Linear::Path::kUnpackDense); }, it, flush);
          j["unpack_us"] = u;
          j["unpack_speedup"] = dense / u;
        }
        if (use_cslt) {
          const double c =
              TimeUs([&] { (void)lin.Forward(x, Sparse24Linear::Path::kCusparselt); }, it, flush);
          j["cusparselt_us"] = c;
          j["cusparselt_speedup"] = dense / c;
          j["cusparselt_searched"] = lin.CusparseltSearched(m);
        }
        std::cout << j.dump() << std::endl;
      }
    }
  }
  return 0;
}

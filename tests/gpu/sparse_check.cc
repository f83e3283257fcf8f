// GPU check of the 2:4 linear paths (not a ctest: CI has no GPU). For every shape the bench uses
// and a few awkward ones, y from our three decode kernels (CUDA-core, tensor-core and sparse
// tensor-core), from cuSPARSELt and from the unpacked dense path is compared with the fp32 matmul
// of the same masked weights:
//   err = max|y - ref| / max|ref|   must be <= 2^-8 (bf16) or 2^-10 (fp16),
// i.e. within a couple of output roundings (a 16-bit result carries 2^-9 / 2^-12 relative error;
// all paths accumulate in fp32). Dense cuBLAS's own err is printed beside it for scale. The sparse
// tensor-core kernel is also called twice on the same input and must give the same bits (its
// split-K counters are left at zero for the next launch).
// One JSON line per case; exit status 1 if any case fails.
//   sparse_check [--quick] [--dtype bf16|fp16] [--no-cusparselt]
#include <torch/torch.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/sparse/sparse24_linear.h"
#include "worker/sparse/sparse24_spmma.h"

namespace {

using ps::sparse::Sparse24Linear;

double RelErr(const torch::Tensor& y, const torch::Tensor& ref) {
  const double den = ref.abs().max().item<double>();
  return (y.to(torch::kFloat) - ref).abs().max().item<double>() / (den > 0 ? den : 1.0);
}

struct Shape {
  int64_t n, k;
  bool cslt;  // also check cuSPARSELt (its minimum sizes rule out the tiny odd shapes)
};

}  // namespace

int main(int argc, char** argv) {
  bool quick = false, no_cslt = false;
  std::string only;  // "bf16" or "fp16": one dtype
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") quick = true;
    if (a == "--no-cusparselt") no_cslt = true;
    if (a == "--dtype" && i + 1 < argc) only = argv[++i];
  }
  if (!torch::cuda::is_available()) {
    std::cerr << "sparse_check: no CUDA device\n";
    return 2;
  }
  torch::manual_seed(0);
  const std::vector<Shape> shapes = {
      {4096, 4096, true}, {11008, 4096, true}, {4096, 11008, true},
      {72, 48, false},    {264, 80, false},  // cuSPARSELt 0.8.1: not supported
      {100, 272, false},                     // tensor-core kernel: partial blocks
      {102, 272, false},                     // N % 4 != 0: the split-K sum one row at a time
      {4104, 720, false}};
  const std::vector<int64_t> decode_ms = {1, 2, 3, 5, 8, 13, 16, 17, 24, 32, 33, 64};
  std::vector<int64_t> cslt_ms = {1, 5, 16, 128, 1024, 4096, 16384};
  if (quick) cslt_ms = {1, 16, 128};
  int failures = 0, cases = 0;
  for (auto dtype : {torch::kBFloat16, torch::kFloat16}) {
    if (!only.empty() && only != (dtype == torch::kBFloat16 ? "bf16" : "fp16")) continue;
    const double tol = dtype == torch::kBFloat16 ? 1.0 / 256 : 1.0 / 1024;
    for (const Shape& s : shapes) {
      const bool with_cslt = s.cslt && !no_cslt && Sparse24Linear::HasCusparselt();
      auto opts = torch::dtype(dtype).device(torch::kCUDA);
      // 2:4 magnitude pruning of a random weight, plus some all-zero groups and exact zeros.
      auto w = ps::sparse::PruneTwoFour(torch::randn({s.n, s.k}, opts) * 0.02);
      w.index_put_({torch::indexing::Slice(0, std::min<int64_t>(s.n, 3))}, 0);
      std::unique_ptr<Sparse24Linear> made;
      try {
        made = std::make_unique<Sparse24Linear>(w, /*keep_native=*/true, with_cslt);
      } catch (const std::exception& e) {
        std::cout
            << nlohmann::json{{"n", s.n}, {"k", s.k}, {"error", e.what()}, {"ok", false}}.dump()
            << std::endl;
        ++failures;
        continue;
      }
      Sparse24Linear& lin = *made;
      std::cout << nlohmann::json{{"n", s.n},
                                  {"k", s.k},
                                  {"native_shares_cusparselt_values", lin.SharesValues()},
                                  {"native_bytes", lin.NativeBytes()},
                                  {"sparse_mma_bytes", lin.SparseMmaBytes()},
                                  {"cusparselt_bytes", lin.CusparseltBytes()}}
                       .dump()
                << std::endl;
      const auto wf = w.to(torch::kFloat);
      std::set<int64_t> ms(decode_ms.begin(), decode_ms.end());
      if (with_cslt) ms.insert(cslt_ms.begin(), cslt_ms.end());
      auto in = [](const std::vector<int64_t>& v, int64_t m) {
        return std::find(v.begin(), v.end(), m) != v.end();
      };
      for (int64_t m : ms) {
        const auto x = torch::randn({m, s.k}, opts);
        const auto ref = torch::matmul(x.to(torch::kFloat), wf.t());
        const double dense_err = RelErr(torch::matmul(x, w.t()), ref);
        const bool decode = in(decode_ms, m);
        const bool cslt = with_cslt && in(cslt_ms, m);
        using P = Sparse24Linear::Path;
        // kAuto as well: up to 32 rows it times the kernels against each other and the prefill
        // path on its first call.
        for (P path : {P::kDecode, P::kDecodeMma, P::kSparseMma, P::kCusparselt, P::kUnpackDense,
                       P::kAuto}) {
          const bool native_path = path == P::kDecode || path == P::kDecodeMma ||
                                   path == P::kSparseMma || path == P::kAuto;
          if ((native_path && !decode) || (path == P::kCusparselt && !cslt) ||
              (path == P::kUnpackDense && !decode && !cslt))
            continue;
          nlohmann::json j{{"dtype", dtype == torch::kBFloat16 ? "bf16" : "fp16"},
                           {"n", s.n},
                           {"k", s.k},
                           {"m", m},
                           {"path", ps::sparse::PathName(path)},
                           {"dense_cublas_err", dense_err},
                           {"tol", tol}};
          try {
            const auto y = lin.Forward(x, path);
            torch::cuda::synchronize();
            const double err = RelErr(y, ref);
            j["err"] = err;
            if (path == P::kCusparselt) j["searched"] = lin.CusparseltSearched(m);
            j["ok"] = err <= tol && y.sizes() == ref.sizes();
            if (path == P::kSparseMma) {
              const bool same = torch::equal(lin.Forward(x, path), y);
              j["repeat_same"] = same;
              if (!same) j["ok"] = false;
              // Every variant of the kernel, not only the one its timing kept.
              for (int v = 0; v < ps::sparse::kSpmmaVariants; ++v) {
                if (!lin.SparseMmaVariantRuns(m, v)) {
                  j["v" + std::to_string(v)] = "does not run this shape";
                  continue;
                }
                const auto yv = lin.SparseMmaVariant(x, v);
                const double ev = RelErr(yv, ref);
                j["err_v" + std::to_string(v)] = ev;
                if (!(ev <= tol) || !torch::equal(lin.SparseMmaVariant(x, v), yv)) j["ok"] = false;
              }
            }
          } catch (const std::exception& e) {
            j["error"] = e.what();
            j["ok"] = false;
          }
          ++cases;
          if (!j["ok"].get<bool>()) ++failures;
          std::cout << j.dump() << std::endl;
        }
      }
    }
  }
  // Malformed input is an error, not a wrong answer.
  try {
    auto dense = torch::randn({64, 64}, torch::dtype(torch::kBFloat16));
    Sparse24Linear bad(dense, true, false);
    std::cout << R"({"check":"dense weight rejected","ok":false})" << std::endl;
    ++failures;
  } catch (const ps::Error& e) {
    std::cout << nlohmann::json{{"check", "dense weight rejected"},
                                {"ok", true},
                                {"message", e.what()}}
                     .dump()
              << std::endl;
  }
  std::cout << nlohmann::json{{"cases", cases}, {"failures", failures}}.dump() << std::endl;
  return failures ? 1 : 0;
}

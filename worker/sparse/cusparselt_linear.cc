#include "worker/sparse/cusparselt_linear.h"

#include <c10/cuda/CUDAStream.h>
#include <cusparseLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "common/error.h"

namespace ps::sparse {
namespace {

void Check(cusparseStatus_t st, const char* what) {
  if (st != CUSPARSE_STATUS_SUCCESS)
    throw Error(std::string("cuSPARSELt: ") + what + " failed with status " +
                std::to_string(static_cast<int>(st)));
}
#define PS_CSLT(call) Check((call), #call)

// One handle per process (this code drives one GPU per process).
const cusparseLtHandle_t* Handle() {
  static cusparseLtHandle_t handle;
  static std::once_flag once;
  std::call_once(once, [] { PS_CSLT(cusparseLtInit(&handle)); });
  return &handle;
}

cudaDataType TypeOf(torch::ScalarType t) {
  if (t == torch::kBFloat16) return CUDA_R_16BF;
  if (t == torch::kFloat16) return CUDA_R_16F;
  throw Error("cuSPARSELt linear: only bf16 and fp16 weights are supported");
}

cudaStream_t Stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// The search mode from PS_CUSPARSELT_SEARCH: "0" none (default algorithm), "manual" our own
// timing of every algorithm id with split-K 1 (each id's plan and matmul status-checked), anything
// else cuSPARSELt's cusparseLtMatmulSearch. PS_CUSPARSELT_ALG=<id> pins one id (no search).
std::string SearchMode() {
  const char* env = std::getenv("PS_CUSPARSELT_SEARCH");
  return env ? std::string(env) : std::string("search");
}

torch::Tensor Bytes(size_t n, const torch::Tensor& like) {
  return torch::empty({static_cast<int64_t>(std::max<size_t>(n, 1))},
                      torch::dtype(torch::kUInt8).device(like.device()));
}

}  // namespace

struct Plan {
  cusparseLtMatDescriptor_t b{}, c{};
  cusparseLtMatmulDescriptor_t mm{};
  cusparseLtMatmulAlgSelection_t alg{};
  cusparseLtMatmulPlan_t plan{};
  torch::Tensor workspace;
  bool has_plan = false;
  bool searched = true;  // false when the search failed and the default algorithm runs
  ~Plan() {
    if (has_plan) cusparseLtMatmulPlanDestroy(&plan);
    cusparseLtMatDescriptorDestroy(&b);
    cusparseLtMatDescriptorDestroy(&c);
  }
};

struct CusparseLtLinear::State {
  int64_t n = 0, k = 0;
  torch::ScalarType dtype = torch::kBFloat16;
  cudaDataType type = CUDA_R_16BF;
  cusparseLtMatDescriptor_t a{};
  torch::Tensor compressed;
  size_t compressed_bytes = 0;
  std::map<int64_t, std::unique_ptr<Plan>> plans;
  ~State() {
    plans.clear();
    cusparseLtMatDescriptorDestroy(&a);
  }

  // Rebuilds p's plan with algorithm `id` (split-K left at its default); false when cuSPARSELt
  // refuses the id (the plan is then rebuilt with the default algorithm).
  bool SetAlgorithm(Plan& p, int id) {
    const auto* h = Handle();
    if (p.has_plan) PS_CSLT(cusparseLtMatmulPlanDestroy(&p.plan));
    p.has_plan = false;
    PS_CSLT(cusparseLtMatmulAlgSelectionInit(h, &p.alg, &p.mm, CUSPARSELT_MATMUL_ALG_DEFAULT));
    bool ok = cusparseLtMatmulAlgSetAttribute(h, &p.alg, CUSPARSELT_MATMUL_ALG_CONFIG_ID, &id,
                                              sizeof(id)) == CUSPARSE_STATUS_SUCCESS;
    if (ok) ok = cusparseLtMatmulPlanInit(h, &p.plan, &p.mm, &p.alg) == CUSPARSE_STATUS_SUCCESS;
    if (!ok) {
      PS_CSLT(cusparseLtMatmulAlgSelectionInit(h, &p.alg, &p.mm, CUSPARSELT_MATMUL_ALG_DEFAULT));
      PS_CSLT(cusparseLtMatmulPlanInit(h, &p.plan, &p.mm, &p.alg));
    }
    p.has_plan = true;
    return ok;
  }

  // Times every algorithm id (split-K 1) on these operands with CUDA events and keeps the
  // fastest; ids whose plan or matmul fails are skipped. One line per shape on stderr.
  bool ManualSearch(Plan& p, int64_t mp, const torch::Tensor& xb, const torch::Tensor& y,
                    const torch::Tensor& ws) {
    const auto* h = Handle();
    int max_id = 0;
    PS_CSLT(cusparseLtMatmulAlgGetAttribute(h, &p.alg, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &max_id,
                                            sizeof(max_id)));
    const float alpha = 1.f, beta = 0.f;
    cudaStream_t s = Stream();
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    int best = -1, tried = 0;
    float best_ms = 0.f;
    for (int id = 0; id < max_id; ++id) {
      if (!SetAlgorithm(p, id)) continue;
      size_t need = 0;
      if (cusparseLtMatmulGetWorkspace(h, &p.plan, &need) != CUSPARSE_STATUS_SUCCESS ||
          need > static_cast<size_t>(ws.numel()))
        continue;
      auto run = [&] {
        return cusparseLtMatmul(h, &p.plan, &alpha, compressed.data_ptr(), xb.data_ptr(), &beta,
                                y.data_ptr(), y.data_ptr(), ws.data_ptr(), &s, 1);
      };
      if (run() != CUSPARSE_STATUS_SUCCESS || cudaStreamSynchronize(s) != cudaSuccess) continue;
      ++tried;
      cudaEventRecord(e0, s);
      for (int i = 0; i < 5; ++i) run();
      cudaEventRecord(e1, s);
      cudaEventSynchronize(e1);
      float ms = 0.f;
      cudaEventElapsedTime(&ms, e0, e1);
      if (best < 0 || ms < best_ms) {
        best = id;
        best_ms = ms;
      }
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    std::fprintf(stderr,
                 "cuSPARSELt manual search: N %lld K %lld M %lld: %d of %d algorithm ids ran, "
                 "best id %d (%.1f us)\n",
                 static_cast<long long>(n), static_cast<long long>(k), static_cast<long long>(mp),
                 tried, max_id, best, best_ms * 1000.f / 5);
    if (best < 0) {
      SetAlgorithm(p, 0);
      return false;
    }
    return SetAlgorithm(p, best);
  }

  Plan& PlanFor(int64_t mp, const torch::Tensor& xb) {
    auto it = plans.find(mp);
    if (it != plans.end()) return *it->second;
    const auto* h = Handle();
    auto p = std::make_unique<Plan>();
    PS_CSLT(cusparseLtDenseDescriptorInit(h, &p->b, mp, k, k, 16, type, CUSPARSE_ORDER_ROW));
    PS_CSLT(cusparseLtDenseDescriptorInit(h, &p->c, n, mp, n, 16, type, CUSPARSE_ORDER_COL));
    PS_CSLT(cusparseLtMatmulDescriptorInit(h, &p->mm, CUSPARSE_OPERATION_NON_TRANSPOSE,
                                           CUSPARSE_OPERATION_TRANSPOSE, &a, &p->b, &p->c, &p->c,
                                           CUSPARSE_COMPUTE_32F));
    PS_CSLT(cusparseLtMatmulAlgSelectionInit(h, &p->alg, &p->mm, CUSPARSELT_MATMUL_ALG_DEFAULT));
    PS_CSLT(cusparseLtMatmulPlanInit(h, &p->plan, &p->mm, &p->alg));
    p->has_plan = true;
    size_t ws = 0;
    PS_CSLT(cusparseLtMatmulGetWorkspace(h, &p->plan, &ws));
    // Search may try split-K configurations that want more workspace than the default plan.
    auto search_ws = Bytes(std::max<size_t>(ws, size_t{64} << 20), xb);
    auto y = torch::empty({mp, n}, xb.options());
    const float alpha = 1.f, beta = 0.f;
    cudaStream_t s = Stream();
    const std::string mode = SearchMode();
    const char* pinned = std::getenv("PS_CUSPARSELT_ALG");
    if (pinned) {
      p->searched = SetAlgorithm(*p, std::atoi(pinned));
      if (!p->searched)
        throw Error(std::string("cuSPARSELt: PS_CUSPARSELT_ALG=") + pinned +
                    " is not a usable algorithm id for this shape");
    } else if (mode == "manual") {
      p->searched = ManualSearch(*p, mp, xb, y, search_ws);
    } else {
      const cusparseStatus_t st =
          mode == "0" ? CUSPARSE_STATUS_NOT_SUPPORTED
                      : cusparseLtMatmulSearch(h, &p->plan, &alpha, compressed.data_ptr(),
                                               xb.data_ptr(), &beta, y.data_ptr(), y.data_ptr(),
                                               search_ws.data_ptr(), &s, 1);
      if (st != CUSPARSE_STATUS_SUCCESS) {
        // Keep the default algorithm rather than fail; rebuild the plan so no half-searched
        // state stays. (On the H100 with cuSPARSELt 0.8.1 the fp16 search dies of an illegal
        // instruction that poisons the CUDA context, which no fallback can undo: run fp16 with
        // PS_CUSPARSELT_SEARCH=manual or 0. docs/sparse-inference.md.)
        p->searched = false;
        SetAlgorithm(*p, 0);
      }
    }
    // The search updated the plan with the fastest algorithm and split-K: size the workspace
    // for what will run.
    PS_CSLT(cusparseLtMatmulGetWorkspace(h, &p->plan, &ws));
    p->workspace = Bytes(ws, xb);
    return *plans.emplace(mp, std::move(p)).first->second;
  }
};

CusparseLtLinear::CusparseLtLinear(const torch::Tensor& w) : s_(std::make_unique<State>()) {
  if (!w.is_cuda() || w.dim() != 2)
    throw Error("cuSPARSELt linear: the weight must be a 2-D CUDA tensor");
  s_->dtype = w.scalar_type();
  s_->type = TypeOf(s_->dtype);
  s_->n = w.size(0);
  s_->k = w.size(1);
  if (s_->n % 8 != 0 || s_->k % 16 != 0)
    throw Error("cuSPARSELt linear: weight [" + std::to_string(s_->n) + ", " +
                std::to_string(s_->k) + "] needs out % 8 == 0 and in % 16 == 0");
  const torch::Tensor wc = w.contiguous();
  const auto* h = Handle();
  PS_CSLT(cusparseLtStructuredDescriptorInit(h, &s_->a, s_->n, s_->k, s_->k, 16, s_->type,
                                             CUSPARSE_ORDER_ROW, CUSPARSELT_SPARSITY_50_PERCENT));
  size_t buffer = 0;
  PS_CSLT(cusparseLtSpMMACompressedSize2(h, &s_->a, &s_->compressed_bytes, &buffer));
  s_->compressed = Bytes(s_->compressed_bytes, wc);
  auto scratch = Bytes(buffer, wc);
  PS_CSLT(cusparseLtSpMMACompress2(h, &s_->a, 1, CUSPARSE_OPERATION_NON_TRANSPOSE, wc.data_ptr(),
                                   s_->compressed.data_ptr(), scratch.data_ptr(), Stream()));
}

CusparseLtLinear::~CusparseLtLinear() = default;

torch::Tensor CusparseLtLinear::Forward(const torch::Tensor& x) {
  if (!x.is_cuda() || x.dim() != 2 || x.size(1) != s_->k || x.scalar_type() != s_->dtype)
    throw Error("cuSPARSELt linear: input must be CUDA [M, " + std::to_string(s_->k) +
                "] of the weight's dtype");
  const int64_t m = x.size(0);
  const int64_t mp = (m + 7) / 8 * 8;
  torch::Tensor xb = x.contiguous();
  if (mp != m) {
    auto padded = torch::zeros({mp, s_->k}, x.options());
    padded.narrow(0, 0, m).copy_(xb);
    xb = padded;
  }
  Plan& p = s_->PlanFor(mp, xb);
  auto y = torch::empty({mp, s_->n}, x.options());
  const float alpha = 1.f, beta = 0.f;
  cudaStream_t s = Stream();
  PS_CSLT(cusparseLtMatmul(Handle(), &p.plan, &alpha, s_->compressed.data_ptr(), xb.data_ptr(),
                           &beta, y.data_ptr(), y.data_ptr(), p.workspace.data_ptr(), &s, 1));
  return mp == m ? y : y.narrow(0, 0, m);
}

size_t CusparseLtLinear::CompressedBytes() const { return s_->compressed_bytes; }
const torch::Tensor& CusparseLtLinear::Compressed() const { return s_->compressed; }

bool CusparseLtLinear::Searched(int64_t m) const {
  auto it = s_->plans.find((m + 7) / 8 * 8);
  return it != s_->plans.end() && it->second->searched;
}
int64_t CusparseLtLinear::out_features() const { return s_->n; }
int64_t CusparseLtLinear::in_features() const { return s_->k; }

}  // namespace ps::sparse

#include "worker/sparse/cusparselt_linear.h"

#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <cusparseLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

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

torch::Tensor Bytes(size_t n, const torch::Tensor& like) {
  return torch::empty({static_cast<int64_t>(std::max<size_t>(n, 1))},
                      torch::dtype(torch::kUInt8).device(like.device()));
}

// One matmul workspace per device for every plan of every layer: the calls run one after another
// on a stream, and a workspace per plan (one plan per layer and row count) added up to gigabytes
// with split-K algorithms (fp16's measured id), growing with every new prompt length. A larger
// need allocates a larger buffer; the smaller ones stay alive, since plans captured in CUDA
// graphs keep their pointers.
torch::Tensor SharedWorkspace(size_t n, const torch::Tensor& like) {
  static std::mutex mu;
  static std::map<int, std::vector<torch::Tensor>> buffers;  // per device, the largest last
  std::lock_guard<std::mutex> lock(mu);
  auto& list = buffers[like.device().index()];
  if (list.empty() || static_cast<size_t>(list.back().numel()) < n)
    list.push_back(
        Bytes(list.empty() ? n : std::max(n, 2 * static_cast<size_t>(list.back().numel())), like));
  return list.back();
}

// How the algorithm for a shape is chosen (PS_CUSPARSELT_SEARCH; docs/sparse-inference.md):
//   kLibrary      cusparseLtMatmulSearch, then its pick and every algorithm id with split-K 1 are
//                 timed alike and the fastest is kept (the library's pick alone varied between
//                 runs on the H100: 0.97x to 1.39x of dense on one shape). Default for bf16.
//   kManual       every algorithm id with split-K 1, timed, fastest kept.
//   kLibraryOnly  the library's pick as it is (the behaviour before the re-timing).
//   kNone         the default algorithm, no search.
//   kKnown        no search: the algorithm measured best for this device and library (KnownFp16Id),
//                 else the default. Default for fp16: on the H100 with cuSPARSELt 0.8.1 both the
//                 library search and the in-process manual search die of an illegal instruction
//                 (the CUDA context is lost), while every id pinned in a process of its own runs.
enum class Mode { kNone, kManual, kLibrary, kLibraryOnly, kKnown };
const char* const kModeNames[] = {"0", "manual", "library", "library-only", "known"};

Mode SearchMode(cudaDataType type) {
  const char* env = std::getenv("PS_CUSPARSELT_SEARCH");
  const std::string v = env ? env : "";
  if (v.empty()) return type == CUDA_R_16F ? Mode::kKnown : Mode::kLibrary;
  if (v == "0") return Mode::kNone;
  if (v == "manual") return Mode::kManual;
  if (v == "library") return Mode::kLibrary;
  if (v == "library-only") return Mode::kLibraryOnly;
  if (v == "known") return Mode::kKnown;
  throw Error("cuSPARSELt: PS_CUSPARSELT_SEARCH=" + v +
              " is not one of 0, manual, library, library-only, known");
}

// The fp16 algorithm id measured fastest on this device and cuSPARSELt, or -1 (not measured: the
// default algorithm). Measured on the H100 (sm_90) with cuSPARSELt 0.8.1, every id 0-20 pinned in
// a process of its own (2026-11-25, docs/sparse-inference.md): id 6 was the fastest on all three
// Llama-2-7B shapes, 1.40-1.47x of dense cuBLAS at M = 4096 and 16384 and 1.26-1.34x at 1024,
// and passes sparse_check at every M.
int KnownFp16Id() {
#if defined(CUSPARSELT_VER_MAJOR) && defined(CUSPARSELT_VER_MINOR)
  constexpr bool kLibrary08 = CUSPARSELT_VER_MAJOR == 0 && CUSPARSELT_VER_MINOR == 8;
#else
  constexpr bool kLibrary08 = false;
#endif
  int dev = 0, major = 0, minor = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess)
    return -1;
  return kLibrary08 && major == 9 && minor == 0 ? 6 : -1;
}

// What an algorithm selection needs to rebuild a plan: the library search's pick is read back
// into this (as NVIDIA's samples do), the manual search enumerates ids with split-K 1.
struct AlgConfig {
  int id = 0;
  int split_k = 1;
  cusparseLtSplitKMode_t split_k_mode{};  // set only when split_k != 1
  int split_k_buffers = 1;                // likewise
};

// The choice for one (dtype, N, K, M): made once per process and reused by every layer of that
// shape (a 7B model's 32 q_proj layers search once).
struct Choice {
  AlgConfig config;
  bool searched = false;  // false: the default algorithm (no search, or nothing ran)
};
using ShapeKey = std::tuple<int, int64_t, int64_t, int64_t>;
struct ChoiceCache {
  std::mutex mu;
  std::map<ShapeKey, Choice> choices;
};
ChoiceCache& Choices() {
  static ChoiceCache cache;
  return cache;
}

// "id" or "id/skN" (split-K N), for the search's log line.
std::string ConfigName(const AlgConfig& c) {
  return std::to_string(c.id) + (c.split_k == 1 ? "" : "/sk" + std::to_string(c.split_k));
}

AlgConfig WithId(int id) {
  AlgConfig c;
  c.id = id;
  return c;
}

// Microseconds with one decimal, or `none` for a negative time (did not run).
std::string Us(float us, const char* none) {
  if (us < 0) return none;
  char t[32];
  std::snprintf(t, sizeof(t), "%.1f", static_cast<double>(us));
  return t;
}

// PS_CUSPARSELT_ALG=<id>: one algorithm id for every shape (split-K 1), no search.
int PinnedId(const char* s) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > 1 << 20)
    throw Error(std::string("cuSPARSELt: PS_CUSPARSELT_ALG=") + s +
                " is not an algorithm id (a non-negative integer)");
  return static_cast<int>(v);
}

}  // namespace

struct Plan {
  cusparseLtMatDescriptor_t b{}, c{};
  cusparseLtMatmulDescriptor_t mm{};
  cusparseLtMatmulAlgSelection_t alg{};
  cusparseLtMatmulPlan_t plan{};
  torch::Tensor workspace;
  bool has_plan = false;
  bool searched = false;  // chosen by a search or PS_CUSPARSELT_ALG, not the default
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

  // p's plan with the library's default algorithm selection.
  void Reset(Plan& p) {
    const auto* h = Handle();
    if (p.has_plan) PS_CSLT(cusparseLtMatmulPlanDestroy(&p.plan));
    p.has_plan = false;
    PS_CSLT(cusparseLtMatmulAlgSelectionInit(h, &p.alg, &p.mm, CUSPARSELT_MATMUL_ALG_DEFAULT));
    PS_CSLT(cusparseLtMatmulPlanInit(h, &p.plan, &p.mm, &p.alg));
    p.has_plan = true;
  }

  // Rebuilds p's plan with config c; false when cuSPARSELt refuses it (p then has the default
  // plan).
  bool Apply(Plan& p, const AlgConfig& c) {
    const auto* h = Handle();
    if (p.has_plan) PS_CSLT(cusparseLtMatmulPlanDestroy(&p.plan));
    p.has_plan = false;
    PS_CSLT(cusparseLtMatmulAlgSelectionInit(h, &p.alg, &p.mm, CUSPARSELT_MATMUL_ALG_DEFAULT));
    auto set = [&](cusparseLtMatmulAlgAttribute_t attr, const void* v, size_t size) {
      return cusparseLtMatmulAlgSetAttribute(h, &p.alg, attr, v, size) == CUSPARSE_STATUS_SUCCESS;
    };
    const bool ok =
        set(CUSPARSELT_MATMUL_ALG_CONFIG_ID, &c.id, sizeof(c.id)) &&
        (c.split_k == 1 ||
         (set(CUSPARSELT_MATMUL_SPLIT_K, &c.split_k, sizeof(c.split_k)) &&
          set(CUSPARSELT_MATMUL_SPLIT_K_MODE, &c.split_k_mode, sizeof(c.split_k_mode)) &&
          set(CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, &c.split_k_buffers, sizeof(c.split_k_buffers)))) &&
        cusparseLtMatmulPlanInit(h, &p.plan, &p.mm, &p.alg) == CUSPARSE_STATUS_SUCCESS;
    if (ok)
      p.has_plan = true;
    else
      Reset(p);
    return ok;
  }

  // The configuration p's selection holds (after cusparseLtMatmulSearch: the library's pick).
  AlgConfig ReadConfig(const Plan& p) const {
    const auto* h = Handle();
    auto get = [&](cusparseLtMatmulAlgAttribute_t attr, void* v, size_t size) {
      PS_CSLT(cusparseLtMatmulAlgGetAttribute(h, &p.alg, attr, v, size));
    };
    AlgConfig c;
    get(CUSPARSELT_MATMUL_ALG_CONFIG_ID, &c.id, sizeof(c.id));
    get(CUSPARSELT_MATMUL_SPLIT_K, &c.split_k, sizeof(c.split_k));
    if (c.split_k != 1) {
      get(CUSPARSELT_MATMUL_SPLIT_K_MODE, &c.split_k_mode, sizeof(c.split_k_mode));
      get(CUSPARSELT_MATMUL_SPLIT_K_BUFFERS, &c.split_k_buffers, sizeof(c.split_k_buffers));
    }
    return c;
  }

  // The operands a search runs on: the caller's x, a scratch y and a generous workspace.
  struct Operands {
    const torch::Tensor& x;
    torch::Tensor y, ws;
  };

  // The one timing method of every search: p rebuilt with config c, one untimed call, then the
  // median over kReps groups of kCalls back-to-back calls (CUDA events; back-to-back so that
  // launch gaps do not count), in microseconds per call. Negative when cuSPARSELt refuses c, c
  // needs more workspace than o.ws, or a call fails.
  float Time(Plan& p, const AlgConfig& c, const Operands& o) {
    constexpr int kReps = 7, kCalls = 3;
    // A refused launch may leave a (non-sticky) CUDA error behind, which LibTorch's next launch
    // check would report as its own: clear it.
    auto fail = [] {
      (void)cudaGetLastError();
      return -1.f;
    };
    if (!Apply(p, c)) return fail();
    const auto* h = Handle();
    size_t need = 0;
    if (cusparseLtMatmulGetWorkspace(h, &p.plan, &need) != CUSPARSE_STATUS_SUCCESS ||
        need > static_cast<size_t>(o.ws.numel()))
      return fail();
    const float alpha = 1.f, beta = 0.f;
    cudaStream_t s = Stream();
    auto run = [&] {
      return cusparseLtMatmul(h, &p.plan, &alpha, compressed.data_ptr(), o.x.data_ptr(), &beta,
                              o.y.data_ptr(), o.y.data_ptr(), o.ws.data_ptr(), &s, 1);
    };
    if (run() != CUSPARSE_STATUS_SUCCESS || cudaStreamSynchronize(s) != cudaSuccess) return fail();
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    std::vector<float> us;
    bool failed = false;
    for (int r = 0; r < kReps; ++r) {
      cudaEventRecord(e0, s);
      for (int i = 0; i < kCalls; ++i) failed |= run() != CUSPARSE_STATUS_SUCCESS;
      cudaEventRecord(e1, s);
      cudaEventSynchronize(e1);
      float ms = 0.f;
      cudaEventElapsedTime(&ms, e0, e1);
      us.push_back(ms * 1000.f / kCalls);
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    if (failed) return fail();
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  }

  // Chooses p's algorithm for mp rows as SearchMode says (p holds the default plan on entry, the
  // chosen one on return) and writes one JSON line to stderr: every configuration timed ("id" or
  // "id/skN" for split-K N, "L:" marks the library's pick, "-" one that did not run), the
  // choice, its time and which search found it.
  Choice Search(Plan& p, int64_t mp, const torch::Tensor& xb) {
    const Mode mode = SearchMode(type);
    if (mode == Mode::kNone) return {};
    if (mode == Mode::kKnown) {
      const int id = type == CUDA_R_16F ? KnownFp16Id() : -1;
      const bool ok = id >= 0 && Apply(p, WithId(id));  // refused: p keeps the default plan
      std::fprintf(stderr,
                   "{\"cusparselt_search\":\"known\",\"dtype\":\"%s\",\"n\":%lld,\"k\":%lld,"
                   "\"m\":%lld,\"chosen\":\"%s\"}\n",
                   type == CUDA_R_16F ? "fp16" : "bf16", static_cast<long long>(n),
                   static_cast<long long>(k), static_cast<long long>(mp),
                   ok ? std::to_string(id).c_str() : "default");
      return ok ? Choice{WithId(id), true} : Choice{};
    }
    const auto* h = Handle();
    int max_id = 0;
    PS_CSLT(cusparseLtMatmulAlgGetAttribute(h, &p.alg, CUSPARSELT_MATMUL_ALG_CONFIG_MAX_ID, &max_id,
                                            sizeof(max_id)));
    size_t ws = 0;
    PS_CSLT(cusparseLtMatmulGetWorkspace(h, &p.plan, &ws));
    // Split-K configurations may want more workspace than the default plan.
    const Operands o{xb, torch::empty({mp, n}, xb.options()),
                     Bytes(std::max<size_t>(ws, size_t{64} << 20), xb)};
    struct Candidate {
      AlgConfig config;
      bool library;
      float us = -1.f;
    };
    std::vector<Candidate> cands;
    int library_status = -1;  // -1: not run
    if (mode == Mode::kLibrary || mode == Mode::kLibraryOnly) {
      const float alpha = 1.f, beta = 0.f;
      cudaStream_t s = Stream();
      library_status = static_cast<int>(
          cusparseLtMatmulSearch(h, &p.plan, &alpha, compressed.data_ptr(), xb.data_ptr(), &beta,
                                 o.y.data_ptr(), o.y.data_ptr(), o.ws.data_ptr(), &s, 1));
      if (library_status == static_cast<int>(CUSPARSE_STATUS_SUCCESS))
        cands.push_back({ReadConfig(p), true, -1.f});
      else
        (void)cudaGetLastError();  // as in Time()
    }
    const bool has_library = !cands.empty();
    if (mode != Mode::kLibraryOnly)
      for (int id = 0; id < max_id; ++id)
        if (!has_library || cands[0].config.id != id || cands[0].config.split_k != 1)
          cands.push_back({WithId(id), false, -1.f});
    const Candidate* best = nullptr;
    float library_us = -1.f, manual_us = -1.f;
    std::string tried;
    for (Candidate& c : cands) {
      c.us = Time(p, c.config, o);
      tried += (tried.empty() ? "" : " ") + std::string(c.library ? "L:" : "") +
               ConfigName(c.config) + "=" + Us(c.us, "-");
      if (c.us < 0) continue;
      float& source_best = c.library ? library_us : manual_us;
      if (source_best < 0 || c.us < source_best) source_best = c.us;
      if (!best || c.us < best->us) best = &c;
    }
    Choice choice;
    if (best) {
      if (!Apply(p, best->config))
        throw Error("cuSPARSELt: algorithm " + ConfigName(best->config) +
                    " ran in the search but its plan was then refused");
      choice = {best->config, true};
    } else {
      Reset(p);
    }
    std::fprintf(stderr,
                 "{\"cusparselt_search\":\"%s\",\"dtype\":\"%s\",\"n\":%lld,\"k\":%lld,"
                 "\"m\":%lld,\"library_status\":%d,\"max_id\":%d,\"tried\":\"%s\","
                 "\"chosen\":\"%s\",\"chosen_us\":%s,\"found_by\":\"%s\",\"library_us\":%s,"
                 "\"manual_best_us\":%s}\n",
                 kModeNames[static_cast<int>(mode)], type == CUDA_R_16F ? "fp16" : "bf16",
                 static_cast<long long>(n), static_cast<long long>(k), static_cast<long long>(mp),
                 library_status, max_id, tried.c_str(),
                 best ? ConfigName(best->config).c_str() : "default",
                 Us(best ? best->us : -1.f, "null").c_str(),
                 best ? (best->library ? "library" : "manual") : "none",
                 Us(library_us, "null").c_str(), Us(manual_us, "null").c_str());
    return choice;
  }

  // Sets p's plan (the default one on entry) to the algorithm for mp rows: PS_CUSPARSELT_ALG if
  // set, else this process's choice for (dtype, N, K, M), searched the first time. Returns
  // whether the plan is other than the default.
  bool Choose(Plan& p, int64_t mp, const torch::Tensor& xb) {
    if (const char* pinned = std::getenv("PS_CUSPARSELT_ALG")) {
      if (!Apply(p, WithId(PinnedId(pinned))))
        throw Error(std::string("cuSPARSELt: PS_CUSPARSELT_ALG=") + pinned +
                    " is not a usable algorithm id for this shape");
      return true;
    }
    const ShapeKey key{static_cast<int>(type), n, k, mp};
    ChoiceCache& cache = Choices();
    std::optional<Choice> known;
    {
      std::lock_guard<std::mutex> lock(cache.mu);
      auto it = cache.choices.find(key);
      if (it != cache.choices.end()) known = it->second;
    }
    if (!known) {
      const Choice c = Search(p, mp, xb);
      std::lock_guard<std::mutex> lock(cache.mu);
      cache.choices.emplace(key, c);
      return c.searched;
    }
    if (known->searched && !Apply(p, known->config))
      throw Error("cuSPARSELt: algorithm " + ConfigName(known->config) + " chosen for N " +
                  std::to_string(n) + " K " + std::to_string(k) + " M " + std::to_string(mp) +
                  " was refused for another weight of that shape");
    return known->searched;
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
    Reset(*p);
    p->searched = Choose(*p, mp, xb);
    // Size the workspace for the plan that will run.
    size_t ws = 0;
    PS_CSLT(cusparseLtMatmulGetWorkspace(h, &p->plan, &ws));
    p->workspace = SharedWorkspace(ws, xb);
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
  // Malformed PS_CUSPARSELT_SEARCH / PS_CUSPARSELT_ALG are errors here, not at the first call.
  (void)SearchMode(s_->type);
  if (const char* pinned = std::getenv("PS_CUSPARSELT_ALG")) (void)PinnedId(pinned);
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

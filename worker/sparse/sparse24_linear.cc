#include "worker/sparse/sparse24_linear.h"

#include <ATen/Parallel.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "worker/sparse/mma_sp_layout.h"
#include "worker/sparse/sparse24_gemv.h"
#include "worker/sparse/sparse24_spmma.h"
#ifdef PS_WITH_CUSPARSELT
#include "worker/sparse/cusparselt_linear.h"
#endif

namespace ps::sparse {

namespace {
// µs per call of `f` on the current stream, as it runs when serving: 3 untimed calls, then the
// median of 5, each timed alone with CUDA events after the L2 cache is overwritten (the timed
// choices between paths and between kernel variants). Serving, a layer's weights come from DRAM
// (a model is far larger than L2), while back-to-back calls find them in L2 (a 4096 x 4096 2:4
// weight takes 19 MB of the H100's 50): timed hot, the choice favoured variants that are slower
// cold.
double MicrosPerCall(const std::function<void()>& f) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  int dev = 0, l2 = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev) != cudaSuccess || l2 <= 0)
    l2 = 64 << 20;
  auto flush = torch::empty({2 * static_cast<int64_t>(l2) / 4},
                            torch::TensorOptions().dtype(torch::kFloat).device(torch::kCUDA, dev));
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms(5, 0.f);
  for (size_t i = 0; i < ms.size(); ++i) {
    flush.fill_(static_cast<double>(i & 1));
    cudaEventRecord(a, stream);
    f();
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&ms[i], a, b);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2] * 1000.0;
}
}  // namespace

#ifndef PS_WITH_CUSPARSELT
// Without cuSPARSELt the class is only declared; nothing ever creates one.
class CusparseLtLinear {};
#endif

const char* PathName(Sparse24Linear::Path p) {
  switch (p) {
    case Sparse24Linear::Path::kAuto:
      return "auto";
    case Sparse24Linear::Path::kDecode:
      return "decode";
    case Sparse24Linear::Path::kDecodeMma:
      return "decode_mma";
    case Sparse24Linear::Path::kSparseMma:
      return "sparse_mma";
    case Sparse24Linear::Path::kCusparselt:
      return "cusparselt";
    case Sparse24Linear::Path::kUnpackDense:
      return "unpack_dense";
  }
  return "?";
}

Sparse24Linear::Sparse24Linear(const torch::Tensor& w, bool keep_native, bool keep_cusparselt) {
  if (w.dim() != 2) throw Error("Sparse24Linear: the weight must be 2-D");
  dtype_ = w.scalar_type();
  if (dtype_ != torch::kBFloat16 && dtype_ != torch::kFloat16)
    throw Error("Sparse24Linear: only bf16 and fp16 weights are supported");
  if (!keep_native && !keep_cusparselt) throw Error("Sparse24Linear: keep at least one form");
  n_ = w.size(0);
  k_ = w.size(1);
  const auto dev = torch::Device(torch::kCUDA, c10::cuda::current_device());
  // Every zero as +0.0 (`W * mask` leaves -0.0), so both forms see the same kept positions.
  torch::Tensor wd = w.to(dev).contiguous();
  wd = wd.masked_fill(wd.eq(0), 0);
  // Packing checks 2:4 sparsity (ps::Error naming the group otherwise) for both forms.
  NativePacked packed = PackNativeOnDevice(wd);
  if (keep_cusparselt) {
#ifdef PS_WITH_CUSPARSELT
    cslt_ = std::make_unique<CusparseLtLinear>(wd);
#else
    throw Error("Sparse24Linear: this build has no cuSPARSELt (configure with it found)");
#endif
  }
  if (!keep_native) return;
  native_ = {packed.values.contiguous(), packed.meta.contiguous()};
  BuildSparseMmaLayout();
#ifdef PS_WITH_CUSPARSELT
  if (cslt_) {
    // If cuSPARSELt's buffer begins with exactly our kept values (its layout is not documented,
    // so this is checked, not assumed), read them from there and keep only our metadata.
    const torch::Tensor& buf = cslt_->Compressed();
    const int64_t vbytes = native_.values.nbytes();
    if (buf.numel() >= vbytes &&
        torch::equal(buf.narrow(0, 0, vbytes), native_.values.view({-1}).view(torch::kUInt8))) {
      torch::Tensor keep = buf;  // the deleter holds the buffer alive as long as the view
      native_.values = torch::from_blob(
          buf.data_ptr(), {n_, k_ / 2}, [keep](void*) mutable { keep = torch::Tensor(); },
          torch::dtype(dtype_).device(buf.device()));
      shared_values_ = true;
    }
  }
#endif
}

Sparse24Linear::~Sparse24Linear() = default;
Sparse24Linear::Sparse24Linear(Sparse24Linear&&) noexcept = default;
Sparse24Linear& Sparse24Linear::operator=(Sparse24Linear&&) noexcept = default;

bool Sparse24Linear::HasCusparselt() {
#ifdef PS_WITH_CUSPARSELT
  return true;
#else
  return false;
#endif
}

int64_t Sparse24Linear::NativeBytes() const {
  if (!native_.values.defined()) return 0;
  return shared_values_ ? native_.meta.nbytes() : native_.bytes();
}

int64_t Sparse24Linear::SparseMmaBytes() const {
  return sp_values_.defined() ? sp_values_.nbytes() + sp_meta_.nbytes() + sp_counters_.nbytes() : 0;
}

void Sparse24Linear::BuildSparseMmaLayout() {
  // Once per layer, on the host (the same code the CPU test checks), split over row tiles.
  const torch::Tensor v = native_.values.to(torch::kCPU).contiguous();
  const torch::Tensor m = native_.meta.to(torch::kCPU).contiguous();
  const spmma::Shape s = spmma::MakeShape(n_, k_);
  auto words = torch::dtype(torch::kInt32);
  torch::Tensor out_v = torch::empty({s.value_words()}, words);
  torch::Tensor out_m = torch::empty({s.meta_words()}, words);
  const auto* vp = static_cast<const uint16_t*>(v.data_ptr());
  const auto* mp = m.data_ptr<uint8_t>();
  auto* ov = reinterpret_cast<uint32_t*>(out_v.data_ptr<int32_t>());
  auto* om = reinterpret_cast<uint32_t*>(out_m.data_ptr<int32_t>());
  std::string error;
  std::mutex error_mu;
  at::parallel_for(0, s.row_tiles, 16, [&](int64_t begin, int64_t end) {
    try {
      BuildMmaSpLayout(vp, mp, n_, k_, begin, end, ov, om);
    } catch (const Error& e) {
      std::lock_guard<std::mutex> lock(error_mu);
      if (error.empty()) error = e.what();
    }
  });
  if (!error.empty()) throw Error("Sparse24Linear: " + error);
  const auto dev = native_.values.device();
  sp_values_ = out_v.to(dev);
  sp_meta_ = out_m.to(dev);
  sp_counters_ = torch::zeros({Sparse24SpmmaCounters(static_cast<int>(n_))},
                              torch::dtype(torch::kInt32).device(dev));
}

int64_t Sparse24Linear::CusparseltBytes() const {
#ifdef PS_WITH_CUSPARSELT
  return cslt_ ? static_cast<int64_t>(cslt_->CompressedBytes()) : 0;
#else
  return 0;
#endif
}

bool Sparse24Linear::CusparseltSearched(int64_t m) const {
#ifdef PS_WITH_CUSPARSELT
  return cslt_ && cslt_->Searched(m);
#else
  (void)m;
  return false;
#endif
}

torch::Tensor Sparse24Linear::Decode(const torch::Tensor& x, bool mma) {
  torch::Tensor xc = x.contiguous();
  // The kernels load x 16 bytes at a time: a view that starts mid-row gets its own copy.
  if (reinterpret_cast<uintptr_t>(xc.data_ptr()) % 16) xc = xc.clone();
  const int64_t m = xc.size(0);
  auto y = torch::empty({m, n_}, xc.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const Elem elem = dtype_ == torch::kBFloat16 ? Elem::kBF16 : Elem::kF16;
  // The CUDA-core kernel takes up to kDecodeMaxM rows at a time, the tensor-core one kMmaMaxM.
  const int64_t chunk = mma ? kMmaMaxM : kDecodeMaxM;
  for (int64_t r = 0; r < m; r += chunk) {
    const int rows = static_cast<int>(std::min<int64_t>(chunk, m - r));
    const auto kernel = mma ? Sparse24GemmSmallM : Sparse24Gemv;
    const cudaError_t err =
        kernel(elem, xc[r].data_ptr(), native_.values.data_ptr(), native_.meta.data_ptr<uint8_t>(),
               y[r].data_ptr(), rows, static_cast<int>(n_), static_cast<int>(k_), stream);
    if (err != cudaSuccess)
      throw Error(std::string(mma ? "2:4 tensor-core decode kernel: " : "2:4 decode kernel: ") +
                  cudaGetErrorString(err) + " (M " + std::to_string(rows) + ", N " +
                  std::to_string(n_) + ", K " + std::to_string(k_) + ")");
  }
  return y;
}

torch::Tensor Sparse24Linear::SparseMma(const torch::Tensor& x) {
  const auto it = SpmmaVariants().find(ChoiceKey(x.size(0)));
  return SparseMmaVariant(x, it != SpmmaVariants().end() ? it->second : TimeSpmmaVariants(x));
}

std::map<std::tuple<int, int64_t, int64_t, int64_t>, int>& Sparse24Linear::SpmmaVariants() {
  static std::map<std::tuple<int, int64_t, int64_t, int64_t>, int> variants;
  return variants;
}

int Sparse24Linear::TimeSpmmaVariants(const torch::Tensor& x) {
  // Which variant wins depends on M, the shape and the GPU (rows per warp against loads in
  // flight): each is timed once on this input, 3 untimed then 5 timed calls, and the fastest is
  // kept for every layer of this dtype, shape and M. Printed as one JSON line on stderr.
  int best_variant = 0;
  double best = 0;
  std::string times;
  for (int v = 0; v < kSpmmaVariants; ++v) {
    if (!SparseMmaVariantRuns(x.size(0), v)) continue;  // variant 0 always runs
    const double us = MicrosPerCall([&] { (void)SparseMmaVariant(x, v); });
    if (v == 0 || us < best) {
      best = us;
      best_variant = v;
    }
    times += ",\"v" + std::to_string(v) + "_us\":" + std::to_string(us);
  }
  SpmmaVariants()[ChoiceKey(x.size(0))] = best_variant;
  std::fprintf(stderr, "{\"sparse24_spmma_variant\":%d,\"n\":%lld,\"k\":%lld,\"m\":%lld%s}\n",
               best_variant, static_cast<long long>(n_), static_cast<long long>(k_),
               static_cast<long long>(x.size(0)), times.c_str());
  return best_variant;
}

bool Sparse24Linear::SparseMmaVariantRuns(int64_t m, int variant) const {
  if (variant < 0 || variant >= kSpmmaVariants || m < 1) return false;
  const int sms = DeviceSmCount();
  for (int64_t r = 0; r < m; r += kSpmmaMaxM) {
    const int rows = static_cast<int>(std::min<int64_t>(kSpmmaMaxM, m - r));
    if (!Sparse24SpmmaPlan(rows, static_cast<int>(n_), static_cast<int>(k_), sms, 0, variant)
             .available)
      return false;
  }
  return true;
}

torch::Tensor Sparse24Linear::SparseMmaVariant(const torch::Tensor& x, int variant) {
  if (!sp_values_.defined())
    throw Error(
        "Sparse24Linear: the sparse tensor-core kernel needs the native form, which was "
        "not kept");
  if (variant < 0 || variant >= kSpmmaVariants)
    throw Error("Sparse24Linear: sparse tensor-core kernel variant " + std::to_string(variant) +
                " does not exist (0.." + std::to_string(kSpmmaVariants - 1) + ")");
  torch::Tensor xc = x.contiguous();
  if (reinterpret_cast<uintptr_t>(xc.data_ptr()) % 16) xc = xc.clone();  // 16-byte x loads
  const int64_t m = xc.size(0);
  auto y = torch::empty({m, n_}, xc.options());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream().stream();
  const Elem elem = dtype_ == torch::kBFloat16 ? Elem::kBF16 : Elem::kF16;
  const int sms = DeviceSmCount();
  for (int64_t r = 0; r < m; r += kSpmmaMaxM) {
    const int rows = static_cast<int>(std::min<int64_t>(kSpmmaMaxM, m - r));
    const SpmmaPlan plan =
        Sparse24SpmmaPlan(rows, static_cast<int>(n_), static_cast<int>(k_), sms, 0, variant);
    if (!plan.available)
      throw Error("Sparse24Linear: sparse tensor-core kernel variant " + std::to_string(variant) +
                  " cannot run " + std::to_string(m) + " rows of " + std::to_string(n_) + " x " +
                  std::to_string(k_) +
                  " on this GPU (variant 3 needs thread block clusters, compute capability 9.0+, "
                  "and K in at most 8 slices of shared memory); use variant 0, 1, 2 or 4");
    torch::Tensor work;
    if (plan.workspace_floats > 0)
      work = torch::empty({plan.workspace_floats}, xc.options().dtype(torch::kFloat));
    const cudaError_t err = Sparse24Spmma(
        elem, xc[r].data_ptr(), reinterpret_cast<const uint32_t*>(sp_values_.data_ptr<int32_t>()),
        reinterpret_cast<const uint32_t*>(sp_meta_.data_ptr<int32_t>()), y[r].data_ptr(), plan,
        work.defined() ? work.data_ptr<float>() : nullptr,
        reinterpret_cast<unsigned*>(sp_counters_.data_ptr<int32_t>()), stream);
    if (err != cudaSuccess)
      throw Error(std::string("2:4 sparse tensor-core kernel: ") + cudaGetErrorString(err) +
                  " (M " + std::to_string(rows) + ", N " + std::to_string(n_) + ", K " +
                  std::to_string(k_) + ", variant " + std::to_string(variant) + ")");
  }
  return y;
}

torch::Tensor Sparse24Linear::UnpackDense(const torch::Tensor& x) {
  auto w = torch::empty({n_, k_}, x.options());
  const cudaError_t err =
      Sparse24Unpack(native_.values.data_ptr(), native_.meta.data_ptr<uint8_t>(), w.data_ptr(), n_,
                     k_, c10::cuda::getCurrentCUDAStream().stream());
  if (err != cudaSuccess)
    throw Error(std::string("2:4 unpack kernel: ") + cudaGetErrorString(err) + " (N " +
                std::to_string(n_) + ", K " + std::to_string(k_) + ")");
  return torch::matmul(x, w.t());
}

Sparse24Linear::Path Sparse24Linear::AutoPath(int64_t m) const {
  const bool native = native_.values.defined();
  if (native && m <= kMmaMaxM) {
    const auto it = TimedChoices().find(ChoiceKey(m));
    if (it != TimedChoices().end()) return it->second;
    // Before the first timed call:
    if (m <= kAutoGemvMaxM) return Path::kDecode;
    if (m <= kAutoMmaMaxM) return Path::kDecodeMma;
  }
  if (cslt_ && (cslt_refusal_.empty() || !native)) return Path::kCusparselt;
  return Path::kUnpackDense;
}

std::map<std::tuple<int, int64_t, int64_t, int64_t>, Sparse24Linear::Path>&
Sparse24Linear::TimedChoices() {
  static std::map<std::tuple<int, int64_t, int64_t, int64_t>, Path> choices;
  return choices;
}

std::tuple<int, int64_t, int64_t, int64_t> Sparse24Linear::ChoiceKey(int64_t m) const {
  return {static_cast<int>(dtype_), n_, k_, m};
}

Sparse24Linear::Path Sparse24Linear::TimeSmallM(const torch::Tensor& x) {
  // Up to kMmaMaxM rows no path wins on every shape, M and GPU (the CUDA-core kernel, the
  // tensor-core kernel, the sparse tensor-core kernel, the prefill path: cuSPARSELt or unpack +
  // cuBLAS): the first call of each (dtype, shape, M) times each on its input, 3 untimed then 5
  // timed calls each, and the process keeps the fastest for every layer of that shape. A path
  // that fails (a shape cuSPARSELt refuses) is left out. Printed as one JSON line on stderr.
  const Path other = cslt_ && cslt_refusal_.empty() ? Path::kCusparselt : Path::kUnpackDense;
  std::vector<Path> candidates = {Path::kDecodeMma, Path::kSparseMma, other};
  if (x.size(0) <= kDecodeMaxM) candidates.insert(candidates.begin(), Path::kDecode);
  auto time = [&](Path p) { return MicrosPerCall([&] { (void)Forward(x, p); }); };
  Path chosen = candidates.front();
  double best = 0;
  bool timed_one = false;
  std::string times;
  for (const Path p : candidates) {
    double us = 0;
    try {
      us = time(p);
    } catch (const Error& e) {
      times += ",\"" + std::string(PathName(p)) + "_error\":" + nlohmann::json(e.what()).dump();
      continue;
    }
    if (!timed_one || us < best) {
      best = us;
      chosen = p;
      timed_one = true;
    }
    times += ",\"" + std::string(PathName(p)) + "_us\":" + std::to_string(us);
  }
  TimedChoices()[ChoiceKey(x.size(0))] = chosen;
  std::fprintf(stderr, "{\"sparse24_small_m_choice\":\"%s\",\"n\":%lld,\"k\":%lld,\"m\":%lld%s}\n",
               PathName(chosen), static_cast<long long>(n_), static_cast<long long>(k_),
               static_cast<long long>(x.size(0)), times.c_str());
  return chosen;
}

torch::Tensor Sparse24Linear::Forward(const torch::Tensor& x, Path path) {
  if (!x.is_cuda() || x.dim() != 2 || x.size(1) != k_ || x.scalar_type() != dtype_)
    throw Error("Sparse24Linear: input must be CUDA [M, " + std::to_string(k_) +
                "] of the weight's dtype");
  const bool automatic = path == Path::kAuto;
  if (automatic) {
    const int64_t m = x.size(0);
    const bool timed =
        native_.values.defined() && m >= 1 && m <= kMmaMaxM && !TimedChoices().count(ChoiceKey(m));
    path = timed ? TimeSmallM(x) : AutoPath(m);
  }
  if (path != Path::kCusparselt) {
    if (!native_.values.defined())
      throw Error(std::string("Sparse24Linear: path ") + PathName(path) +
                  " needs the native form, which was not kept");
    if (path == Path::kUnpackDense) return UnpackDense(x);
    if (path == Path::kSparseMma) return SparseMma(x);
    return Decode(x, path == Path::kDecodeMma);
  }
#ifdef PS_WITH_CUSPARSELT
  if (cslt_) {
    if (!automatic || !native_.values.defined()) return cslt_->Forward(x);
    try {
      return cslt_->Forward(x);
    } catch (const Error& e) {  // a plan cuSPARSELt does not support for this shape
      cslt_refusal_ = e.what();
      return UnpackDense(x);
    }
  }
#endif
  throw Error("Sparse24Linear: the cuSPARSELt form was not kept (or this build has none)");
}

}  // namespace ps::sparse

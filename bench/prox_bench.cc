// prox_bench: the EnumALM 2:4 prox on Llama-2-7B layer shapes (4 x 4096x4096, 2 x 11008x4096,
// 1 x 4096x11008 per decoder block), lambda in {0.25, 25}, bf16 and fp32, on the CPU and (when
// built with CUDA and a GPU is present) on CUDA. For each: ms per layer, effective GB/s (bytes
// read + written), the device's copy bandwidth measured in the same run and the % of it reached,
// and the same layer through a straightforward whole-tensor op composition of the official
// PyTorch prox (sort, 100 fixed iterations, three candidates), with the speedup.
// Weights are N(0, 0.02^2) (Llama-2's scale); each timed run starts from the pristine weights
// with the GPU's L2 flushed, so nothing is timed on already-sparse or cached data.
// On the CPU only the first --cpu-rows rows of each shape are run (default 512) and the time is
// scaled to the whole layer (the work is linear in the number of groups); the line says so.
// --algos (default: all) runs every listed per-group solver (prox_algo.h) on every line, so one
// run compares them on the same device. --work-proxy instead prints, per solver, a GPU-time
// proxy computed on the CPU (no timing): the mean iterations and estimated lane instructions per
// group, and the same with every lane of a 32-lane warp waiting for the slowest (lanes hold the
// CUDA kernel's items: two bf16 groups or one fp32 group), which is what a warp pays.
// On CUDA each solver runs once per --cuda-budgets value (CudaLaunchOptions::defer_budget: groups
// past that many iterations go to the block's second pass; 0: one pass), and --first-release adds
// the first release's kernel (ALM without 2:4's closed forms, every candidate stopped at 100
// iterations, one pass; the rounding-noise stop rule is the current one) on the
// same lines, for a before/after in one run. "capped" counts groups that stopped at the cap.
// --cpu-paths (default: best) times the CPU prox on each listed path (scalar: the code the CUDA
// kernel shares; avx2: 8 groups in lock step; best: what the product uses here). --official-reps 0
// skips the official-style composition. --dtypes / --lambdas narrow the grid (e.g. for a
// profiler).
//   prox_bench [--devices cpu,cuda] [--cpu-reps N] [--cuda-reps N] [--official-reps N]
//              [--cpu-rows R] [--algos alm,newton,newton+bounds] [--cpu-paths best,scalar,avx2]
//              [--cuda-budgets 0,16] [--first-release]
//              [--dtypes bf16,fp32] [--lambdas 0.25,25]
//              [--work-proxy [--defer-budgets 0,16] [--first-release]]
#include <torch/torch.h>

#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_timer.h"
#include "bench/prox_work_model.h"
#include "worker/prox/official_prox_ops.h"
#include "worker/prox/prox.h"
#include "worker/prox/prox_cpu.h"
#include "worker/prox/prox_cuda.h"
#include "worker/prox/prox_group.h"

#ifdef PS_WITH_CUDA
#include <c10/cuda/CUDAStream.h>
#endif

namespace {

using ps::prox::ProxStats;

struct Shape {
  int64_t out, in;
  int per_block;  // layers of this shape in one Llama-2-7B decoder block
};
const std::vector<Shape> kShapes = {{4096, 4096, 4}, {11008, 4096, 2}, {4096, 11008, 1}};

double TimeMs(const torch::Device& dev, int reps, const std::function<void()>& prepare,
              const std::function<void()>& fn) {
  return ps::bench::TimeMs(dev.is_cuda(), reps, prepare, fn);
}

// Copy bandwidth (GB/s, bytes read + written) of dst.copy_(src) on 1 GiB (GPU) / 256 MiB (CPU).
double CopyBandwidth(const torch::Device& dev) {
  const int64_t bytes = dev.is_cuda() ? (int64_t{1} << 30) : (int64_t{256} << 20);
  auto src = torch::ones({bytes / 4}, torch::dtype(torch::kFloat32).device(dev));
  auto dst = torch::empty_like(src);
  dst.copy_(src);  // warm up
  const double ms = TimeMs(
      dev, dev.is_cuda() ? 10 : 3, [] {}, [&] { dst.copy_(src); });
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

// The GPU-time proxy of one layer's groups (see the header comment).
void WorkProxy(const torch::Tensor& w, torch::ScalarType dt, float lambda, const Shape& s,
               const std::vector<ps::prox::ProxAlgo>& algos, const std::vector<int>& budgets,
               bool first_release) {
  const torch::Tensor f = w.to(torch::kFloat32).contiguous();
  const float* data = f.data_ptr<float>();
  const int64_t groups = f.numel() / 4;
  const int per_lane = dt == torch::kBFloat16 ? 2 : 1;  // groups per 16-byte item
  const float tol = ps::prox::AlmRelTolFor(
      ps::prox::MantissaBits(dt == torch::kBFloat16 ? ps::DType::kBF16 : ps::DType::kF32));
  struct Run {
    ps::prox::GroupOutcome o;
    int work;
  };
  // budget < 0: the first release's algorithm (no 2:4 closed forms, 100 iterations).
  auto run = [&](int64_t group, ps::prox::ProxAlgo algo, int budget) {
    float y[4];
    for (int i = 0; i < 4; ++i) y[i] = data[4 * group + i];
    ps::prox::bench::CostTrace trace;
    ps::prox::GroupLimits limits;
    limits.budget = budget > 0 ? budget : 0;
    if (budget < 0) {
      limits.max_iterations = ps::prox::kFirstReleaseMaxIterations;
      limits.closed_forms = false;
    }
    const auto o = ps::prox::ProxGroupTraced<2, 4>(y, lambda, tol, algo, limits, trace);
    return Run{o, trace.work};
  };
  std::vector<std::pair<ps::prox::ProxAlgo, int>> variants;
  if (first_release) variants.emplace_back(ps::prox::ProxAlgo::kAlm, -1);
  for (auto algo : algos)
    for (int budget : budgets) variants.emplace_back(algo, budget);
  for (const auto& [algo, budget] : variants) {
    double iters = 0, work = 0, warp_iters = 0, warp_work = 0;
    int64_t unconverged = 0;
    std::vector<int64_t> deferred;
    const int64_t lanes = groups / per_lane;
    for (int64_t w0 = 0; w0 < lanes; w0 += 32) {
      double max_it = 0, max_work = 0;
      for (int64_t lane = w0; lane < std::min(lanes, w0 + 32); ++lane) {
        double lane_it = 0, lane_work = 0;
        for (int k = 0; k < per_lane; ++k) {
          const auto [o, o_work] = run(lane * per_lane + k, algo, budget);
          lane_it += o.sweeps;
          lane_work += o_work;
          if (o.deferred)
            deferred.push_back(lane * per_lane + k);
          else
            unconverged += o.converged ? 0 : 1;
        }
        iters += lane_it;
        work += lane_work;
        max_it = std::max(max_it, lane_it);
        max_work = std::max(max_work, lane_work);
      }
      warp_iters += 32 * max_it;
      warp_work += 32 * max_work;
    }
    // The second pass: the deferred groups again without a budget, one per lane.
    for (size_t w0 = 0; w0 < deferred.size(); w0 += 32) {
      double max_it = 0, max_work = 0;
      for (size_t k = w0; k < std::min(deferred.size(), w0 + 32); ++k) {
        const auto [o, o_work] = run(deferred[k], algo, 0);
        iters += o.sweeps;
        work += o_work;
        unconverged += o.converged ? 0 : 1;
        max_it = std::max<double>(max_it, o.sweeps);
        max_work = std::max<double>(max_work, o_work);
      }
      warp_iters += 32 * max_it;
      warp_work += 32 * max_work;
    }
    const double g = static_cast<double>(lanes * per_lane);
    const std::string name = budget < 0 ? std::string("first-release")
                                        : std::string(ps::prox::ProxAlgoName(algo)) +
                                              (budget > 0 ? "/defer" + std::to_string(budget) : "");
    std::printf(
        "proxy %s lambda=%-5g %5ldx%-5ld %-20s iters/group %6.2f (warp %6.2f) work/group %6.0f "
        "(warp %6.0f, efficiency %3.0f%%) deferred %.4f unconverged %ld [%ld groups]\n",
        dt == torch::kBFloat16 ? "bf16" : "fp32", lambda, static_cast<long>(s.out),
        static_cast<long>(s.in), name.c_str(), iters / g, warp_iters / g, work / g, warp_work / g,
        100.0 * work / warp_work, deferred.size() / g, static_cast<long>(unconverged),
        static_cast<long>(g));
    std::fflush(stdout);
  }
}

int Run(int argc, char** argv) {
  std::string devices = "cpu,cuda";
  int cpu_reps = 1, cuda_reps = 10, official_reps = 1;
  int64_t cpu_rows = 512;
  bool work_proxy = false;
  std::vector<int> budgets = {0};
  std::vector<int> cuda_budgets = {ps::prox::kDefaultCudaDeferBudget};
  bool first_release = false;
  std::vector<std::pair<ps::prox::CpuPath, std::string>> cpu_paths = {
      {ps::prox::CpuPath::kBest, "best"}};
  std::vector<float> lambdas = {0.25f, 25.0f};
  std::vector<std::string> dtypes = {"bf16", "fp32"};
  auto split = [](const std::string& list) {
    std::vector<std::string> out;
    for (size_t at = 0; at <= list.size();) {
      const size_t comma = std::min(list.find(',', at), list.size());
      out.push_back(list.substr(at, comma - at));
      at = comma + 1;
    }
    return out;
  };
  std::vector<ps::prox::ProxAlgo> algos;
  for (int i = 0; i < ps::prox::kProxAlgoCount; ++i)
    algos.push_back(static_cast<ps::prox::ProxAlgo>(i));
  for (int i = 1; i < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--work-proxy" || a == "--first-release") {
      (a == "--work-proxy" ? work_proxy : first_release) = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", a.c_str());
      return 2;
    }
    if (a == "--algos") {
      algos.clear();
      for (const auto& name : split(argv[i + 1])) {
        const auto algo = ps::prox::ParseProxAlgo(name);
        if (!algo) {
          std::fprintf(stderr, "unknown algorithm in --algos %s (alm, newton, newton+bounds)\n",
                       argv[i + 1]);
          return 2;
        }
        algos.push_back(*algo);
      }
    } else if (a == "--defer-budgets") {
      budgets.clear();
      for (const auto& b : split(argv[i + 1])) budgets.push_back(std::stoi(b));
    } else if (a == "--cuda-budgets") {
      cuda_budgets.clear();
      for (const auto& b : split(argv[i + 1])) cuda_budgets.push_back(std::stoi(b));
    } else if (a == "--cpu-paths") {
      cpu_paths.clear();
      for (const auto& name : split(argv[i + 1])) {
        if (name == "best")
          cpu_paths.emplace_back(ps::prox::CpuPath::kBest, name);
        else if (name == "scalar")
          cpu_paths.emplace_back(ps::prox::CpuPath::kScalar, name);
        else if (name == "avx2")
          cpu_paths.emplace_back(ps::prox::CpuPath::kAvx2, name);
        else {
          std::fprintf(stderr, "unknown path in --cpu-paths %s (best, scalar, avx2)\n",
                       argv[i + 1]);
          return 2;
        }
      }
    } else if (a == "--lambdas") {
      lambdas.clear();
      for (const auto& v : split(argv[i + 1])) lambdas.push_back(std::stof(v));
    } else if (a == "--dtypes") {
      dtypes = split(argv[i + 1]);
      for (const auto& d : dtypes)
        if (d != "bf16" && d != "fp32") {
          std::fprintf(stderr, "unknown dtype in --dtypes (bf16, fp32): %s\n", d.c_str());
          return 2;
        }
    } else if (a == "--devices")
      devices = argv[i + 1];
    else if (a == "--cpu-reps")
      cpu_reps = std::stoi(argv[i + 1]);
    else if (a == "--cuda-reps")
      cuda_reps = std::stoi(argv[i + 1]);
    else if (a == "--official-reps")
      official_reps = std::stoi(argv[i + 1]);
    else if (a == "--cpu-rows")
      cpu_rows = std::stol(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  torch::NoGradGuard no_grad_proxy;
  if (work_proxy) {
    for (auto dt : {torch::kBFloat16, torch::kFloat32})
      for (float lambda : {0.25f, 25.0f})
        for (const auto& s : kShapes) {
          torch::manual_seed(42);
          const int64_t rows = std::min(s.out, cpu_rows);
          WorkProxy((torch::randn({rows, s.in}) * 0.02).to(dt), dt, lambda, s, algos, budgets,
                    first_release);
        }
    return 0;
  }
  std::vector<torch::Device> devs;
  if (devices.find("cpu") != std::string::npos) devs.emplace_back(torch::kCPU);
  if (devices.find("cuda") != std::string::npos) {
    if (ps::prox::CudaCompiled() && torch::cuda::is_available())
      devs.emplace_back(torch::kCUDA);
    else
      std::printf("# cuda: not available in this build/machine, skipped\n");
  }
  torch::NoGradGuard no_grad;
  for (const auto& dev : devs) {
    const bool cuda = dev.is_cuda();
    const double copy_bw = CopyBandwidth(dev);
    std::printf("# %s: copy bandwidth %.1f GB/s (read+write), %d threads%s%s\n",
                cuda ? "cuda" : "cpu", copy_bw, at::get_num_threads(), cuda ? "" : ", prox path ",
                cuda ? "" : ps::prox::ProxCpuBestPath());
    // What is timed on each line: every algorithm, and on the CPU every --cpu-paths path.
    struct Variant {
      ps::prox::ProxAlgo algo;
      ps::prox::CpuPath path;
      std::string name;
      int defer_budget = 0;  // CUDA: CudaLaunchOptions::defer_budget
      int max_iterations = ps::prox::kMaxIterations;
      bool closed_forms = true;
    };
    std::vector<Variant> variants;
    // The first release's kernel: ALM without the 2:4 closed forms, 100 iterations, one pass.
    if (cuda && first_release)
      variants.push_back({ps::prox::ProxAlgo::kAlm, ps::prox::CpuPath::kBest, "first-release", 0,
                          ps::prox::kFirstReleaseMaxIterations, false});
    for (auto algo : algos) {
      if (cuda) {
        for (int b : cuda_budgets)
          variants.push_back(
              {algo, ps::prox::CpuPath::kBest,
               std::string(ps::prox::ProxAlgoName(algo)) + "/defer" + std::to_string(b), b});
        continue;
      }
      for (const auto& [path, path_name] : cpu_paths) {
        if (!ps::prox::ProxCpuSupports(path)) {
          std::printf("# cpu path %s: not supported by this CPU, skipped\n", path_name.c_str());
          continue;
        }
        variants.push_back(
            {algo, path, std::string(ps::prox::ProxAlgoName(algo)) + "/" + path_name});
      }
    }
    torch::Tensor flush;
    if (cuda) flush = torch::empty({int64_t{256} << 20}, torch::dtype(torch::kUInt8).device(dev));
    for (const auto& dt_name : dtypes) {
      const auto dt = dt_name == "bf16" ? torch::kBFloat16 : torch::kFloat32;
      for (float lambda : lambdas) {
        std::vector<double> block_ms(variants.size(), 0.0);
        double block_official_ms = 0;
        for (const auto& s : kShapes) {
          torch::manual_seed(42);
          const int64_t rows = cuda ? s.out : std::min(s.out, cpu_rows);
          const double scale = static_cast<double>(s.out) / rows;  // to a whole layer
          const auto orig = (torch::randn({rows, s.in}) * 0.02).to(dt).to(dev);
          auto w = torch::empty_like(orig);
          auto stats = ps::prox::NewStatsBuffer(dev);
          auto prepare = [&] {
            w.copy_(orig);
            if (cuda) flush.zero_();
          };
          // The official-style composition (on the same rows, scaled likewise); 0 reps skips it.
          double off_ms = 0;
          if (official_reps > 0) {
            torch::Tensor res;
            off_ms = scale * TimeMs(dev, official_reps, prepare,
                                    [&] { res = ps::prox::OfficialStyleProx24(w, lambda); });
          }
          block_official_ms += s.per_block * off_ms;
          std::vector<torch::Tensor> copies;
          if (cuda)
            for (int r = 0; r < cuda_reps; ++r) copies.push_back(orig.clone());
          for (size_t a = 0; a < variants.size(); ++a) {
            const auto algo = variants[a].algo;
            const auto path = variants[a].path;
            const ps::DType dtype = dt == torch::kBFloat16 ? ps::DType::kBF16 : ps::DType::kF32;
            ProxStats st;
            auto run_cpu = [&] {
              st.Add(ps::prox::ProxCpu(w.data_ptr(), dtype, w.numel() / 4, lambda, ps::k2of4, 0,
                                       algo, path));
            };
            // One launch of this variant on t (CUDA, asynchronous, statistics into `stats`).
            auto launch = [&](torch::Tensor& t) {
#ifdef PS_WITH_CUDA
              ps::prox::CudaLaunchOptions opt;
              opt.algo = algo;
              opt.defer_budget = variants[a].defer_budget;
              opt.max_iterations = variants[a].max_iterations;
              opt.closed_forms = variants[a].closed_forms;
              ps::prox::ProxCudaLaunch(
                  t.data_ptr(), dtype, t.numel() / 4, lambda, ps::k2of4,
                  reinterpret_cast<ps::prox::DeviceStats*>(stats.data_ptr<int64_t>()),
                  c10::cuda::getCurrentCUDAStream(t.device().index()).stream(), opt);
#else
              (void)t;
#endif
            };
            prepare();
            if (cuda) launch(w);  // warm up
            stats.zero_();
            double ms = 0;
            if (cuda) {
              // cuda_reps pristine copies, L2 flushed, launched back to back between two events:
              // the launches queue up, so the host's launch latency is not timed.
              for (auto& c : copies) c.copy_(orig);
              ms = TimeMs(
                       dev, 1, [&] { flush.zero_(); },
                       [&] {
                         for (auto& c : copies) launch(c);
                       }) /
                   cuda_reps;
              st = ps::prox::ReadStats(stats);
            } else {
              ms = scale * TimeMs(dev, cpu_reps, prepare, run_cpu);
            }
            const double bytes = 2.0 * s.out * s.in * orig.element_size();
            const double gbs = bytes / (ms * 1e-3) / 1e9;
            block_ms[a] += s.per_block * ms;
            const double g = static_cast<double>(st.groups);
            std::printf(
                "%s %s lambda=%-5g %5ldx%-5ld %-20s %9.3f ms/layer %8.2f GB/s %5.1f%% of copy | "
                "2:4 %.3f 3-sparse %.3f dense %.3f iters/group %.2f capped %ld",
                cuda ? "cuda" : "cpu ", dt == torch::kBFloat16 ? "bf16" : "fp32", lambda,
                static_cast<long>(s.out), static_cast<long>(s.in), variants[a].name.c_str(), ms,
                gbs, 100.0 * gbs / copy_bw, st.groups_nsparse / g, st.groups_mid / g,
                st.groups_dense / g, st.alm_sweeps / g, static_cast<long>(st.groups_unconverged));
            if (official_reps > 0)
              std::printf(" | official-style %.1f ms (x%.0f)", off_ms, off_ms / ms);
            if (scale != 1.0)
              std::printf(" [measured on %ld rows, scaled]", static_cast<long>(rows));
            std::printf("\n");
            std::fflush(stdout);
          }
        }
        for (size_t a = 0; a < variants.size(); ++a) {
          std::printf("%s %s lambda=%-5g %-20s block (7 layers) %.3f ms; 7B (32 blocks) %.1f ms",
                      cuda ? "cuda" : "cpu ", dt == torch::kBFloat16 ? "bf16" : "fp32", lambda,
                      variants[a].name.c_str(), block_ms[a], 32 * block_ms[a]);
          if (official_reps > 0)
            std::printf("; official-style block %.1f ms, 7B %.2f s (x%.0f)", block_official_ms,
                        32 * block_official_ms / 1e3, block_official_ms / block_ms[a]);
          std::printf("\n");
        }
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "prox_bench: %s\n", e.what());
    return 1;
  }
}

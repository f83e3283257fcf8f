#include "worker/engine/job_runner.h"

#include <sys/resource.h>
#include <torch/autograd.h>
#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "common/method_registry.h"
#include "common/safetensors.h"
#include "worker/data/calibration.h"
#include "worker/data/documents.h"
#include "worker/distributed/sharded_load.h"
#include "worker/engine/baselines.h"
#include "worker/engine/calibration_data.h"
#include "worker/engine/history.h"
#include "worker/engine/method_runners.h"
#include "worker/engine/pruned_model.h"
#include "worker/engine/publish_artifacts.h"
#include "worker/engine/reconstruction.h"
#include "worker/engine/row_sharded_publish.h"
#include "worker/eval/perplexity.h"
#include "worker/io/tensor_io.h"
#include "worker/methods/nm_mask.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

double PeakRssBytes() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) * 1024.0;
}

torch::Device PickDevice(const JobSpec& spec, const Communicator& comm) {
  if (spec.device == Device::kCpu) return torch::kCPU;
  if (!torch::cuda::is_available())
    throw Error("device: cuda was asked for but this worker sees no CUDA device");
  int n = static_cast<int>(torch::cuda::device_count());
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(comm.rank() % n));
}

struct EvalText {
  std::filesystem::path path;
  std::vector<int32_t> tokens;
};

json EvaluateAll(LlamaForCausalLM& model, const std::vector<EvalText>& texts, const JobSpec& spec,
                 ProgressSink& progress, const std::string& label) {
  json out = json::object();
  torch::NoGradGuard no_grad;
  for (const auto& t : texts) {
    progress.Log("evaluating " + label + " perplexity on " + t.path.filename().string());
    PerplexityOptions o;
    o.ctx = spec.evaluation.ctx;
    if (spec.evaluation.max_windows > 0) o.max_windows = spec.evaluation.max_windows;
    const std::string stage = "evaluate " + label + " " + t.path.filename().string();
    o.on_progress = [&](int64_t done, int64_t windows, double secs) {
      ProgressEvent e;
      e.stage = stage;
      e.unit = "windows";
      e.step = done;
      e.total_steps = windows;
      e.tokens_per_s = static_cast<double>(done * o.ctx) / std::max(secs, 1e-9);
      e.eta_s = secs / static_cast<double>(done) * static_cast<double>(windows - done);
      progress.Progress(e);
    };
    PerplexityResult r = Perplexity(model, t.tokens, o);
    out[t.path.filename().string()] = {{"perplexity", r.perplexity},
                                       {"mean_nll", r.mean_nll},
                                       {"windows", r.windows},
                                       {"windows_available", r.windows_available},
                                       {"predicted_tokens", r.predicted_tokens},
                                       {"seconds", r.seconds}};
  }
  return out;
}

void WriteMasks(const std::filesystem::path& file,
                const std::map<std::string, torch::Tensor>& masks, const JobSpec& spec,
                const std::string& base_hash) {
  std::vector<std::pair<std::string, torch::Tensor>> packed;
  json shapes = json::object();
  for (const auto& [name, mask] : masks) {
    packed.emplace_back(name, PackMaskBits(mask));
    shapes[name] = mask.sizes().vec();
  }
  SaveTensors(file, packed,
              {{"format", "proxsparse-masks-v1"},
               {"pattern", spec.pattern.ToString()},
               {"bit_order", "little"},
               {"shapes", shapes.dump()},
               {"base_model_sha256", base_hash}});
}

// SHA-256 over the base model's safetensors files, in name order.
std::string ModelHash(const std::filesystem::path& dir) {
  Checkpoint c = Checkpoint::Open(dir);
  std::string all;
  std::vector<std::string> files;
  for (const auto& f : c.files())
    files.push_back(f->path().filename().string() + ":" + Sha256File(f->path()));
  std::sort(files.begin(), files.end());
  for (const auto& f : files) all += f + "\n";
  return Sha256Hex({reinterpret_cast<const std::byte*>(all.data()), all.size()});
}

}  // namespace

json RunJob(const JobSpec& spec, const RunOptions& options, Communicator& comm,
            ProgressSink& progress) {
  const auto t0 = Clock::now();
  const std::filesystem::path out = options.output.empty() ? spec.output : options.output;
  if (out.empty()) throw Error("output: no output directory (set output: or pass --output)");
  if (comm.rank() == 0) std::filesystem::create_directories(out);
  comm.Barrier();
  torch::manual_seed(spec.seed);
  const torch::Device device = PickDevice(spec, comm);
  const torch::ScalarType dtype = ToScalarType(spec.dtype);
  CheckJobInputs(spec);

  progress.Log("loading " + spec.model.string());
  // parallel.shard: params on more than one rank: no rank ever holds the whole model. Each reads
  // its rows of the targets (worker/distributed/sharded_load.h); every rank runs the evaluations
  // together (each forward all-gathers the layer it runs) and rank 0 reports them. Every stage
  // works on the rows: the baselines and the reconstruction prune/solve each rank's rows
  // (methods/layerwise.h), the masked update trains them, and publishing gathers one tensor at a
  // time.
  const bool shard_params = spec.parallel.shard == "params";
  const bool row_sharded = shard_params && comm.size() > 1;
  RowShardedLlama shards;
  std::shared_ptr<LlamaForCausalLM> model;
  auto load_sharded = [&] {
    model = nullptr;
    shards = RowShardedLlama{};
    shards = LoadLlamaRowSharded(spec.model, {dtype, device}, comm);
    model = shards.model;
  };
  auto load_whole = [&] {
    model = nullptr;
    shards = RowShardedLlama{};
    model = LoadLlama(spec.model, {dtype, device});
  };
  if (shard_params) {
    load_sharded();
  } else {
    load_whole();
  }
  TeeProgressSink quiet({});
  // Every rank evaluates when the model is row-sharded over ranks; rank 0 alone otherwise. The
  // result is rank 0's (null elsewhere).
  auto evaluate = [&](const std::vector<EvalText>& texts, const std::string& label) -> json {
    const bool together = shards.targets && comm.size() > 1;
    if (comm.rank() != 0 && !together) return nullptr;
    return EvaluateAll(*model, texts, spec, comm.rank() == 0 ? progress : quiet, label);
  };
  auto tokenizer = LoadTokenizer(spec.model);
  const int64_t vocab = model->config().vocab_size;

  json report = {{"format", "proxsparse-report-v1"},
                 {"method", spec.method.name},
                 {"pattern", spec.pattern.ToString()},
                 {"seed", spec.seed},
                 {"device", std::string(ChoiceName(spec.device))},
                 {"dtype", std::string(ChoiceName(spec.dtype))},
                 {"ranks", comm.size()},
                 {"backend", comm.backend()},
                 {"job_hash", JobSpecHash(spec)},
                 {"job_yaml", JobSpecToYaml(spec)}};
  json data = json::object();
  data["model"] = {{"path", spec.model.string()}, {"sha256", ModelHash(spec.model)}};

  std::vector<EvalText> evals;
  if (comm.rank() == 0 || (shard_params && comm.size() > 1)) {
    for (const auto& p : spec.evaluation.ppl)
      evals.push_back({p, LoadEvaluationTokens(p, *tokenizer, vocab)});
  }
  if (comm.rank() == 0) {
    json ev = json::array();
    for (const auto& p : spec.evaluation.ppl) {
      DataFileInfo d = DescribeDataFile(p);
      ev.push_back({{"path", d.path.string()}, {"bytes", d.bytes}, {"sha256", d.sha256}});
    }
    data["evaluation"] = ev;
  }
  if (json dense = evaluate(evals, "dense"); comm.rank() == 0) report["dense"] = dense;

  MaskMap masks;
  const std::string& method = spec.method.name;
  std::vector<std::vector<int32_t>> samples;
  if (!CalibrationNeed(spec).empty()) {
    progress.Log("sampling calibration data from " + spec.calibration.path.string());
    const auto t_calib = Clock::now();
    samples = LoadCalibration(spec.calibration, spec.seed, *tokenizer, vocab);
    DataFileInfo d = DescribeDataFile(spec.calibration.path);
    int64_t tokens = 0;
    for (const auto& s : samples) tokens += static_cast<int64_t>(s.size());
    progress.Log("calibration: " + std::to_string(samples.size()) + " samples, " +
                 std::to_string(tokens) + " tokens in " + FormatDuration(Since(t_calib)));
    data["calibration"] = {{"path", d.path.string()}, {"bytes", d.bytes},
                           {"sha256", d.sha256},      {"samples", samples.size()},
                           {"tokens", tokens},        {"sampling", spec.calibration.sampling}};
  }
  report["data"] = data;

  if (!spec.evaluation.baselines.empty()) {
    // One model in memory at a time: the job's own is loaded again afterwards.
    model = nullptr;
    shards = RowShardedLlama{};
    BaselineHooks hooks;
    hooks.load = [&] {
      if (shard_params) return LoadLlamaRowSharded(spec.model, {dtype, device}, comm);
      return RowShardedLlama{LoadLlama(spec.model, {dtype, device}), nullptr};
    };
    hooks.evaluate = [&](LlamaForCausalLM& m, const std::string& label) {
      return EvaluateAll(m, evals, spec, comm.rank() == 0 ? progress : quiet, label);
    };
    hooks.evaluate_everywhere = row_sharded;
    json b = RunBaselines(spec, samples, hooks, comm, progress);
    report["baselines"] = b["eval"];
    report["baseline_method_seconds"] = b["seconds"];
    if (shard_params) {
      load_sharded();
    } else {
      load_whole();
    }
    torch::manual_seed(spec.seed);  // the method sees the same random state as without baselines
  }

  const auto t_method = Clock::now();
  const MethodInfo& info = GetMethod(method);
  bool weights_changed = info.changes_weights;  // and the masked update below
  const MethodOutcome run = RunMethod(
      {*model, spec, samples, out, options.resume, comm, progress, shards.targets.get()}, masks);
  report[run.report_key] = run.summary;
  report["method_seconds"] = Since(t_method);

  if (info.trains) {
    // Everything learned is thrown away but the masks: back to W0, then W0 ⊙ mask.
    if (shard_params) {
      load_sharded();
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < shards.targets->size(); ++i) {
        const RowBlock r = shards.targets->rows(i);
        torch::Tensor w = shards.targets->local(i);
        w.copy_(ApplyMask(
            w, masks.at(shards.targets->weight_name(i)).narrow(0, r.begin, r.len).to(device)));
      }
    } else {
      load_whole();
      torch::NoGradGuard no_grad;
      for (const auto& l : model->TargetLinears())
        l->ReplaceWeight(ApplyMask(l->weight, masks.at(l->path() + ".weight").to(device)));
    }
  }
  if (json pruned = evaluate(evals, "pruned"); comm.rank() == 0) report["pruned"] = pruned;
  // What the published model is and whether its kept weights are the original ones.
  std::string final_stage = "pruned";
  std::vector<std::string> changes;
  if (info.changes_weights) changes.push_back("the " + method + " update");
  if (spec.reconstruct != "none") {
    // From the dense weights: the update compensates each pruned weight's original value.
    if (shard_params) {
      load_sharded();
    } else {
      load_whole();
    }
    json rec =
        RunReconstruction(*model, spec, masks, samples, comm, progress, shards.targets.get());
    if (json ev = evaluate(evals, "reconstructed"); comm.rank() == 0) rec["eval"] = ev;
    report["reconstruction"] = rec;
    weights_changed = true;
    final_stage = "reconstruction";
    changes.clear();  // from W0: a method's own update (SparseGPT's) is replaced, not kept
    changes.push_back(std::string(spec.reconstruct == "lsq" ? "least-squares" : "OBS") +
                      " reconstruction on the " + method + " mask");
  }
  if (spec.masked_update.steps > 0) {
    json mu =
        RunMaskedUpdate(*model, spec, masks, samples, out, comm, progress, shards.targets.get());
    if (json ev = evaluate(evals, "masked-update"); comm.rank() == 0) mu["eval"] = ev;
    report["masked_update"] = mu;
    weights_changed = true;
    final_stage = "masked_update";
    changes.push_back("masked update");
  }
  if (comm.rank() == 0) {
    std::string how = "original (W0 ⊙ mask, kept weights bit for bit)";
    if (!changes.empty()) {
      how = "changed:";
      for (size_t i = 0; i < changes.size(); ++i) how += (i ? ", then " : " ") + changes[i];
    }
    const json& ev = final_stage == "pruned"           ? report["pruned"]
                     : final_stage == "reconstruction" ? report["reconstruction"]["eval"]
                                                       : report["masked_update"]["eval"];
    report["final"] = {{"stage", final_stage},
                       {"kept_weights", weights_changed ? "changed" : "original"},
                       {"weights", how},
                       {"eval", ev}};
  }

  // Row shards with changed weights: every rank takes part in gathering each published target,
  // one tensor at a time, in the order the publisher writes them (RowShardedPublisher).
  std::optional<RowShardedPublisher> gather_rows;
  if (row_sharded && weights_changed) {
    gather_rows.emplace(*shards.targets, Checkpoint::Open(spec.model).Names(), comm);
    if (!gather_rows->AgreeToPublish(comm.rank() != 0 || !progress.CancelRequested()))
      throw Error("cancelled before publishing; nothing published");
    if (comm.rank() != 0) gather_rows->ServeAll();
  }
  if (comm.rank() == 0) {
    // A job cancelled while it evaluated publishes nothing (psd also serves only what was there
    // when the cancel was recorded).
    if (progress.CancelRequested()) throw Error("cancelled before publishing; nothing published");
    progress.Log("publishing masks and the pruned model to " + out.string());
    const auto t_publish = Clock::now();
    const std::string base_hash = data["model"]["sha256"].get<std::string>();
    if (spec.Publishes("masks")) WriteMasks(out / "masks.safetensors", masks, spec, base_hash);
    std::map<std::string, torch::Tensor> weights;
    if (weights_changed && !gather_rows) {
      for (const auto& l : model->TargetLinears())
        weights[l->path() + ".weight"] = l->weight.detach();
    }
    PublishStats ps = WritePrunedModel(
        spec.model, out / "model",
        [&](const std::string& name,
            const torch::Tensor& original) -> std::optional<torch::Tensor> {
          auto it = masks.find(name);
          if (it == masks.end()) return std::nullopt;
          if (gather_rows)
            return ApplyMask(gather_rows->Next(name).to(torch::kCPU, original.scalar_type()),
                             it->second);
          if (weights_changed)
            return ApplyMask(weights.at(name).to(torch::kCPU, original.scalar_type()), it->second);
          return ApplyMask(original, it->second);
        });
    if (gather_rows && !gather_rows->done()) {
      gather_rows->ServeAll();  // the other ranks wait in their gathers
      throw Error("publishing: not every sharded target was published");
    }
    // Validity, checked on the published files: at most N of M; for the frozen-weight methods
    // every kept weight holds W0's exact bits.
    progress.Log("publishing: model/ written (" + std::to_string(ps.tensors) + " tensors, " +
                 std::to_string(ps.bytes >> 20) + " MiB) in " + FormatDuration(Since(t_publish)) +
                 "; checking N:M validity of " + std::to_string(masks.size()) + " targets");
    Checkpoint published = Checkpoint::Open(out / "model");
    Checkpoint base = Checkpoint::Open(spec.model);
    json layers = json::array();
    int64_t violations = 0, changed_kept = 0;
    for (const auto& [name, mask] : masks) {
      torch::Tensor w = TensorView(published, name);
      torch::Tensor w0 = TensorView(base, name);
      int64_t v = CountNMViolations(w, spec.pattern);
      // Compare as integers (NaN-safe, -0.0 vs 0.0 distinct).
      const auto int_type = w.element_size() == 4 ? torch::kInt32 : torch::kInt16;
      int64_t diff = (w.view(int_type).ne(w0.view(int_type)) & mask).sum().item<int64_t>();
      violations += v;
      changed_kept += diff;
      GroupStats g = ComputeGroupStats(w, spec.pattern);
      layers.push_back({{"name", name},
                        {"groups", g.groups},
                        {"nm_violations", v},
                        {"kept_changed", diff},
                        {"nm_sparse_fraction", g.frac_at_most_n()}});
    }
    // The published masks file holds the method's masks (reconstruction and the masked update
    // keep them bit for bit) and no published weight is non-zero outside its mask.
    int64_t outside = 0;
    bool masks_file_ok = true;
    {
      auto f = SafetensorsFile::Open(out / "masks.safetensors");
      for (const auto& t : f->tensors()) {
        const torch::Tensor& m = masks.at(t.name);
        masks_file_ok = masks_file_ok && UnpackMaskBits(TensorView(*f, t), m.sizes()).equal(m);
        outside += (TensorView(published, t.name).ne(0) & m.logical_not()).sum().item<int64_t>();
      }
      masks_file_ok = masks_file_ok && f->tensors().size() == masks.size();
    }
    report["validity"] = {{"layers", layers},
                          {"nm_violations", violations},
                          {"kept_weights_changed", changed_kept},
                          {"frozen_weights", !weights_changed},
                          {"nonzero_outside_mask", outside},
                          {"masks_file_matches_method", masks_file_ok},
                          {"valid", violations == 0 && outside == 0 && masks_file_ok &&
                                        (weights_changed || changed_kept == 0)}};
    report["published"] = {{"tensors", ps.tensors}, {"replaced", ps.replaced}, {"bytes", ps.bytes}};
    report["artifacts"] = PublishArtifacts(spec, out, report, progress);
    report["wall_seconds"] = Since(t0);
    report["peak_rss_bytes"] = PeakRssBytes();
    report["checkpoints_removed"] = !options.keep_checkpoints;
    WriteFileAtomic(out / "report.json", report.dump(2));
    if (!options.keep_checkpoints) {
      if (const std::error_code ec = RemoveTree(out / "checkpoints"))
        std::fprintf(stderr, "warning: cannot remove %s: %s\n", (out / "checkpoints").c_str(),
                     ec.message().c_str());
    }
  }
  comm.Barrier();
  return report;
}

}  // namespace ps

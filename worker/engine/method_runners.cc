#include "worker/engine/method_runners.h"

#include <torch/autograd.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string_view>

#include "common/error.h"
#include "common/result_summary.h"
#include "worker/data/calibration.h"
#include "worker/data/sharding.h"
#include "worker/distributed/parallelize_llama.h"
#include "worker/engine/history.h"
#include "worker/engine/layerwise_rows.h"
#include "worker/engine/owned_tensors.h"
#include "worker/engine/train_loop.h"
#include "worker/io/tensor_io.h"
#include "worker/methods/layerwise.h"
#include "worker/methods/masked_update.h"
#include "worker/methods/maskllm.h"
#include "worker/methods/nm_mask.h"
#include "worker/methods/proxsparse.h"
#include "worker/models/llama_checkpoint.h"

namespace ps {
namespace {

using json = nlohmann::json;

// Masks travel keyed by parameter name; the methods key them by module name.
constexpr std::string_view kWeightSuffix = ".weight";
std::string ParamName(const std::string& module) { return module + std::string(kWeightSuffix); }
std::map<std::string, torch::Tensor> ByModule(const MaskMap& masks) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, mask] : masks) {
    if (!name.ends_with(kWeightSuffix)) throw Error("mask for '" + name + "': not a .weight");
    out[name.substr(0, name.size() - kWeightSuffix.size())] = mask;
  }
  return out;
}

// Parameter name ("model.layers.0.self_attn.q_proj.weight") of every target, in model order.
std::set<std::string> TargetWeightNames(LlamaForCausalLM& model) {
  std::set<std::string> names;
  for (const auto& l : model.TargetLinears()) names.insert(ParamName(l->path()));
  return names;
}

// parallel.shard: params: the targets train as this rank's rows (parallelize_llama.h), `preloaded`
// when the model was loaded so, else sharded here (into `owned`). Sets the loop's options for it
// (every rank updates its own rows: a one-rank optimizer; activation checkpointing so that a
// layer's gathered weights are freed after its forward) and returns the trained row shards.
std::vector<TrainableTensor> ShardTargets(
    LlamaForCausalLM& model, const JobSpec& spec, Communicator& comm, ProgressSink& progress,
    ShardedLinearWeights* preloaded, std::unique_ptr<ShardedLinearWeights>& owned,
    ShardedLinearWeights*& sharded, std::unique_ptr<Communicator>& one_rank, TrainOptions& t) {
  const MethodSpec& m = spec.method;
  if (m.batch_size % comm.size() != 0)
    throw Error("parallel.shard: params needs method.batch_size (" + std::to_string(m.batch_size) +
                ") to be a multiple of the rank count (" + std::to_string(comm.size()) +
                "): every rank must run the same passes");
  if (preloaded) {
    sharded = preloaded;
    // With more than one rank the targets' full weights are empty placeholders (the rows are the
    // trained tensors).
    if (comm.size() > 1)
      for (const auto& l : model.TargetLinears()) l->weight.set_requires_grad(false);
  } else {
    owned = std::make_unique<ShardedLinearWeights>(model.TargetLinears(), comm);
    sharded = owned.get();
  }
  std::vector<TrainableTensor> params = sharded->Trainables();
  for (auto& p : params) p.param.set_requires_grad(true);
  one_rank = MakeLocalCommunicator();
  t.optimizer_comm = one_rank.get();
  // The gathered weights are freed after each layer's forward and gathered again for its
  // backward: the rerun of activation checkpointing (one rank gathers nothing).
  if (comm.size() > 1) t.activation_checkpointing = true;
  progress.Log("parallel.shard: params: " + std::to_string(params.size()) +
               " target weights sharded by rows over " + std::to_string(comm.size()) +
               " rank(s), activation checkpointing " + (t.activation_checkpointing ? "on" : "off"));
  return params;
}

// The masked update over row shards: each shard's gradient and master are zeroed outside its rows
// of the mask (what MaskedUpdate's gradient hook and MaskedUpdateHooks do for whole weights).
class RowMaskHooks : public TrainHooks {
 public:
  void Add(const std::string& shard_name, torch::Tensor keep) { keep_[shard_name] = keep; }
  void BeforeUpdate(OwnedTensor& t) override {
    const torch::Tensor keep = t.Local(Keep(t.name)).to(t.grad.device());
    t.grad = torch::where(keep, t.grad, torch::zeros_like(t.grad));
  }
  void AfterUpdate(OwnedTensor& t) override {
    torch::NoGradGuard no_grad;
    t.master.masked_fill_(t.Local(Keep(t.name)).to(t.master.device()).logical_not(), 0);
  }

 private:
  const torch::Tensor& Keep(const std::string& name) const {
    auto it = keep_.find(name);
    if (it == keep_.end()) throw Error("masked update: no mask for " + name);
    return it->second;
  }
  std::map<std::string, torch::Tensor> keep_;
};

void ThrowIfInterrupted(const TrainResult& r) {
  if (r.interrupted)
    throw Error("interrupted at step " + std::to_string(r.steps_done) +
                " (checkpoint written; run again with --resume)");
}

}  // namespace

namespace {

using Runner = std::function<MethodOutcome(const MethodInputs&, MaskMap&)>;

MethodOutcome OneShot(const MethodInputs& in, MaskMap& masks) {
  json summary = json::object();
  masks = RunOneShot(in.model, in.spec.method.name, in.spec, in.samples, in.comm, in.progress,
                     false, &summary, in.sharded);
  return {"one_shot", summary};
}

const std::map<std::string_view, Runner>& Runners() {
  static const std::map<std::string_view, Runner> runners = {
      {"proxsparse",
       [](const MethodInputs& in, MaskMap& masks) -> MethodOutcome {
         return {"training", RunProxSparse(in.model, in.spec, in.samples, in.out, in.resume,
                                           in.comm, in.progress, masks, in.sharded)};
       }},
      {"maskllm",
       [](const MethodInputs& in, MaskMap& masks) -> MethodOutcome {
         return {"maskllm", RunMaskLlm(in.model, in.spec, in.samples, in.out, in.resume, in.comm,
                                       in.progress, masks)};
       }},
      {"magnitude", OneShot},
      {"wanda", OneShot},
      {"sparsegpt", OneShot},
  };
  return runners;
}

}  // namespace

MethodOutcome RunMethod(const MethodInputs& in, MaskMap& masks) {
  auto it = Runners().find(in.spec.method.name);
  if (it == Runners().end()) throw Error("method '" + in.spec.method.name + "' has no runner");
  return it->second(in, masks);
}

bool HasRunner(std::string_view name) { return Runners().count(name) > 0; }

void PlotOrWarn(const std::filesystem::path& out, const std::string& csv, const std::string& png,
                const JobSpec& spec, const std::string& title, ProgressSink& progress) {
  try {
    PlotHistory(out / csv, out / png, spec.pattern.ToString(), title);
  } catch (const Error& e) {
    progress.Log(std::string("warning: no plot: ") + e.what());
  }
}

TrainOptions BaseTrainOptions(const JobSpec& spec, int64_t num_samples) {
  const MethodSpec& m = spec.method;
  TrainOptions t;
  t.seqs_per_step = m.batch_size;
  t.grad_accum = m.grad_accum;
  t.overlap_update = m.overlap_update;
  t.activation_checkpointing = spec.parallel.activation_checkpointing;
  const int64_t seqs = num_samples * m.epochs;
  t.total_steps = m.max_steps > 0 ? m.max_steps : (seqs + m.batch_size - 1) / m.batch_size;
  t.lr = m.lr;
  t.warmup_ratio = m.warmup_ratio;
  t.log_every = spec.log_every;
  t.checkpoint_every = spec.checkpoint.every_steps;
  t.master_dtype = ToScalarType(m.master_dtype);
  return t;
}

std::vector<std::vector<int32_t>> EpochOrderedSamples(
    const std::vector<std::vector<int32_t>>& samples, const TrainOptions& options, uint64_t seed) {
  std::vector<std::vector<int32_t>> sequence;
  if (samples.empty()) return sequence;
  const size_t needed = static_cast<size_t>(std::max<int64_t>(1, options.total_steps) *
                                            std::max<int64_t>(1, options.seqs_per_step));
  sequence.reserve(needed);
  for (uint64_t epoch = 0; sequence.size() < needed; ++epoch) {
    if (epoch == 0) {
      sequence.insert(sequence.end(), samples.begin(), samples.end());
    } else {
      for (size_t i : EpochOrder(samples.size(), seed, epoch)) sequence.push_back(samples[i]);
    }
  }
  sequence.resize(needed);
  return sequence;
}

json TrainSummary(const TrainResult& r, int ranks) {
  json j = {{"steps", r.steps_done},
            {"resumed_from", r.resumed_from},
            {"final_loss", r.final_loss},
            {"seconds", r.seconds},
            {"tokens", r.tokens},
            {"phase_seconds", r.phase_seconds},
            {"ranks", ranks}};
  // Since the run or its resume began; capped_groups is 0 when every prox was exact.
  if (r.prox_capped_groups >= 0)
    j["prox"] = {{"groups", r.prox_groups}, {"capped_groups", r.prox_capped_groups}};
  return j;
}

std::vector<std::vector<int32_t>> RankSamples(const std::vector<std::vector<int32_t>>& samples,
                                              const Communicator& comm) {
  BatchSchedule all{samples.size(), std::max<size_t>(1, samples.size()), false};
  std::vector<std::vector<int32_t>> mine;
  if (samples.empty()) return mine;
  for (size_t i : RankShare(all, 0, comm.rank(), comm.size())) mine.push_back(samples[i]);
  return mine;
}

MaskMap RunOneShot(LlamaForCausalLM& model, const std::string& method, const JobSpec& spec,
                   const std::vector<std::vector<int32_t>>& samples, Communicator& comm,
                   ProgressSink& progress, bool restore_dense, json* summary,
                   ShardedLinearWeights* sharded) {
  LayerwiseOptions o;
  o.method = ParseOneShotMethod(method);
  o.pattern = spec.pattern;
  o.sparsegpt.blocksize = spec.method.blocksize;
  o.sparsegpt.percdamp = spec.method.percdamp;
  o.restore_dense_weights = restore_dense;
  if (comm.size() > 1) o.all_reduce_sum = [&comm](torch::Tensor& t) { comm.AllReduceSum(t); };
  o.on_layer_done = [&](int64_t layer, int64_t layers) {
    ProgressEvent e;
    e.step = layer + 1;
    e.total_steps = layers;
    e.stage = method + " layer " + std::to_string(layer + 1) + "/" + std::to_string(layers);
    if (comm.rank() == 0) progress.Progress(e);
  };
  std::optional<LayerwiseRows> rows;
  if (sharded && comm.size() > 1) o.rows = &rows.emplace(*sharded);
  torch::NoGradGuard no_grad;
  LayerwiseResult r = PruneLayerwise(model, RankSamples(samples, comm), o);
  if (summary) {
    (*summary)["calibration_tokens"] = r.calibration_tokens;
    if (!r.sparsegpt_error.empty()) (*summary)["sparsegpt_error"] = r.sparsegpt_error;
  }
  MaskMap masks;
  for (auto& [module, mask] : r.masks) masks[ParamName(module)] = mask;
  return masks;
}

json RunMaskLlm(LlamaForCausalLM& model, const JobSpec& spec,
                const std::vector<std::vector<int32_t>>& samples, const std::filesystem::path& out,
                bool resume, Communicator& comm, ProgressSink& progress, MaskMap& masks) {
  const MethodSpec& m = spec.method;
  std::map<std::string, torch::Tensor> priors;
  json summary = json::object();
  if (m.prior != "none") {
    progress.Log("computing the " + m.prior + " prior mask");
    priors = ByModule(RunOneShot(model, m.prior, spec, samples, comm, progress, true, nullptr));
  }
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  MaskLlmOptions o;
  o.pattern = spec.pattern;
  o.tau_start = m.tau[0];
  o.tau_end = m.tau[1];
  o.kappa_start = m.kappa[0];
  o.kappa_end = m.kappa[1];
  o.prior_alpha = m.prior_alpha;
  o.sparse_reg = m.sparse_reg;
  o.seed = spec.seed;
  MaskLlm mask_llm(model.TargetLinears(), o, priors);
  mask_llm.Install();
  std::vector<TrainableTensor> params;
  for (auto& [name, t] : mask_llm.Parameters()) params.push_back({name, t});
  MaskLlmHooks hooks(mask_llm, spec.pattern);
  TrainOptions t = BaseTrainOptions(spec, static_cast<int64_t>(samples.size()));
  t.master_dtype = torch::kFloat32;
  t.checkpoint_dir = out / "checkpoints";
  t.resume = resume;
  t.history_csv = out / "history.csv";
  t.stage = "maskllm";
  TrainResult r = TrainLoop(model, std::move(params), EpochOrderedSamples(samples, t, spec.seed),
                            hooks, comm, progress, t);
  ThrowIfInterrupted(r);
  for (auto& [module, mask] : mask_llm.FinalMasks()) masks[ParamName(module)] = mask.cpu();
  mask_llm.Uninstall();
  if (comm.rank() == 0)
    PlotOrWarn(out, "history.csv", "history.png", spec, "MaskLLM " + spec.pattern.ToString(),
               progress);
  summary["training"] = TrainSummary(r, comm.size());
  summary["mean_max_probability"] = mask_llm.MeanMaxProbability();
  return summary;
}

json RunMaskedUpdate(LlamaForCausalLM& model, const JobSpec& spec, const MaskMap& masks,
                     const std::vector<std::vector<int32_t>>& samples,
                     const std::filesystem::path& out, Communicator& comm, ProgressSink& progress,
                     ShardedLinearWeights* preloaded) {
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  if (spec.parallel.shard == "params") {
    TrainOptions t = BaseTrainOptions(spec, static_cast<int64_t>(samples.size()));
    t.total_steps = spec.masked_update.steps;
    t.lr = spec.masked_update.lr;
    t.history_csv = out / "masked_update_history.csv";
    t.stage = "masked update";
    std::unique_ptr<ShardedLinearWeights> owned;
    ShardedLinearWeights* sharded = nullptr;
    std::unique_ptr<Communicator> one_rank;
    std::vector<TrainableTensor> params =
        ShardTargets(model, spec, comm, progress, preloaded, owned, sharded, one_rank, t);
    RowMaskHooks hooks;
    for (size_t i = 0; i < sharded->size(); ++i) {
      const RowBlock r = sharded->rows(i);
      torch::Tensor keep = masks.at(sharded->weight_name(i)).narrow(0, r.begin, r.len);
      keep = keep.to(sharded->local(i).device(), torch::kBool);
      {
        torch::NoGradGuard no_grad;  // the pruned weights start at exactly zero
        sharded->local(i).masked_fill_(keep.logical_not(), 0);
      }
      hooks.Add(params[i].name, keep);
    }
    TrainResult r = TrainLoop(model, std::move(params), EpochOrderedSamples(samples, t, spec.seed),
                              hooks, comm, progress, t);
    if (r.interrupted) throw Error("interrupted during the masked update");
    for (size_t i = 0; i < sharded->size(); ++i) sharded->local(i).set_requires_grad(false);
    return TrainSummary(r, comm.size());
  }
  MaskedUpdate mu(model.TargetLinears(), ByModule(masks));
  std::vector<TrainableTensor> params;
  for (auto& [name, t] : mu.Parameters()) params.push_back({name, t});
  MaskedUpdateHooks hooks(mu);
  TrainOptions t = BaseTrainOptions(spec, static_cast<int64_t>(samples.size()));
  t.total_steps = spec.masked_update.steps;
  t.lr = spec.masked_update.lr;
  t.history_csv = out / "masked_update_history.csv";
  t.stage = "masked update";
  TrainResult r = TrainLoop(model, std::move(params), EpochOrderedSamples(samples, t, spec.seed),
                            hooks, comm, progress, t);
  if (r.interrupted) throw Error("interrupted during the masked update");
  mu.ApplyMasks();
  return TrainSummary(r, comm.size());
}

json RunProxSparse(LlamaForCausalLM& model, const JobSpec& spec,
                   const std::vector<std::vector<int32_t>>& samples,
                   const std::filesystem::path& out, bool resume, Communicator& comm,
                   ProgressSink& progress, MaskMap& masks, ShardedLinearWeights* preloaded) {
  const MethodSpec& m = spec.method;
  const std::set<std::string> targets = TargetWeightNames(model);
  std::vector<TrainableTensor> params;
  std::vector<bool> is_target;
  for (auto& np : model.named_parameters()) {
    const bool target = targets.count(np.key()) > 0;
    const bool train = target || m.trainable == Trainable::kAll;
    np.value().set_requires_grad(train);
    if (!train) continue;
    params.push_back({np.key(), np.value()});
    is_target.push_back(target);
  }
  TrainOptions t = BaseTrainOptions(spec, static_cast<int64_t>(samples.size()));
  t.checkpoint_dir = out / "checkpoints";
  t.resume = resume;
  t.history_csv = out / "history.csv";
  t.stage = "proxsparse";
  t.offload_optimizer = spec.parallel.offload == "optimizer";
  // Sharded parameters (parallel.shard: params): each rank trains its rows of every target
  // (worker/distributed/parallelize_llama.h).
  std::unique_ptr<ShardedLinearWeights> owned;
  ShardedLinearWeights* sharded = nullptr;
  std::unique_ptr<Communicator> one_rank;
  if (spec.parallel.shard == "params") {
    params = ShardTargets(model, spec, comm, progress, preloaded, owned, sharded, one_rank, t);
    is_target.assign(params.size(), true);
  }
  auto ckpt = std::make_shared<Checkpoint>(Checkpoint::Open(spec.model));
  const ProxSparseSettings s{spec.pattern, m.lambda1, m.lambda2, m.epsilon, m.hard};
  ProxSparseHooks hooks(s, is_target, [ckpt](const std::string& name) {
    // W0 of a row shard is those rows of the original.
    if (auto shard = ParseRowShardName(name))
      return TensorView(*ckpt, shard->first).narrow(0, shard->second.begin, shard->second.len);
    return TensorView(*ckpt, name);
  });
  std::unique_ptr<ShardedAdamW> opt;
  TrainResult r = TrainLoop(model, std::move(params), EpochOrderedSamples(samples, t, spec.seed),
                            hooks, comm, progress, t, &opt);
  ThrowIfInterrupted(r);
  // Row shards: each rank's top-N mask of its rows, gathered tensor by tensor.
  for (size_t i = 0; sharded && i < opt->size(); ++i) {
    torch::Tensor part = hooks.FinalMask(ViewOf(*opt, i)).to(opt->param(i).device(), torch::kUInt8);
    masks[sharded->weight_name(i)] = sharded->Gather(i, part).cpu().to(torch::kBool);
  }
  // The top-N mask of the learned weights, from their owners to every rank.
  for (size_t i = 0; !sharded && i < opt->size(); ++i) {
    if (!hooks.is_target(i)) continue;
    torch::Tensor mask = GatherFromOwners(*opt, comm, i, torch::kUInt8,
                                          [&](const OwnedTensor& v) { return hooks.FinalMask(v); });
    masks[opt->name(i)] = mask.cpu().to(torch::kBool);
  }
  if (comm.rank() == 0)
    PlotOrWarn(out, "history.csv", "history.png", spec,
               "ProxSparse " + spec.pattern.ToString() + ", λ1 = " + FormatShortest(m.lambda1),
               progress);
  json summary = TrainSummary(r, comm.size());
  summary["ownership_imbalance"] = opt->plan().Imbalance();
  return summary;
}

}  // namespace ps

#include "worker/engine/train_loop.h"

#include <torch/autograd.h>
#include <torch/nn/functional/loss.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <system_error>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "worker/data/sharding.h"
#include "worker/distributed/parallelize_llama.h"
#include "worker/distributed/watchdog.h"
#include "worker/engine/activation_checkpoint.h"
#include "worker/engine/device_sync.h"
#include "worker/io/tensor_io.h"
#include "worker/methods/lr_schedule.h"

namespace ps {
namespace {

std::atomic<bool> g_stop{false};
void OnStopSignal(int) { g_stop.store(true); }

using Clock = std::chrono::steady_clock;
double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string StepDirName(int64_t step) {
  std::string s = std::to_string(step);
  return "step-" + std::string(s.size() < 8 ? 8 - s.size() : 0, '0') + s;
}

// Newest checkpoint whose manifest exists (a manifest is written last, so its presence means
// every shard is complete).
std::optional<std::filesystem::path> NewestCheckpoint(const std::filesystem::path& dir) {
  std::optional<std::filesystem::path> best;
  if (dir.empty() || !std::filesystem::exists(dir)) return best;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_directory() || !std::filesystem::exists(e.path() / "manifest.json")) continue;
    if (!best || e.path().filename().string() > best->filename().string()) best = e.path();
  }
  return best;
}

void WriteCheckpoint(const std::filesystem::path& root, int64_t step, ShardedAdamW& opt,
                     TrainHooks& hooks, Communicator& comm, double loss) {
  auto dir = root / StepDirName(step);
  if (comm.rank() == 0) std::filesystem::create_directories(dir);
  comm.Barrier();
  std::filesystem::create_directories(dir);  // shared or node-local filesystem alike
  auto state = opt.OwnedState();
  for (auto& kv : hooks.CheckpointState()) state.push_back(std::move(kv));
  SaveTensors(dir / ("rank-" + std::to_string(comm.rank()) + ".safetensors"), state,
              {{"step", std::to_string(step)}});
  comm.Barrier();  // every shard is on disk before the manifest says so
  if (comm.rank() == 0) {
    nlohmann::json m = {{"step", step},
                        {"ranks", comm.size()},
                        {"loss", loss},
                        {"format", "proxsparse-checkpoint-v1"}};
    WriteFileAtomic(dir / "manifest.json", m.dump(2));
    // Older complete checkpoints are superseded; keep only the newest (listed first, removed
    // afterwards, by RemoveTree: std::filesystem::remove_all crashed here with the CUDA LibTorch).
    // A failed removal of an old checkpoint only costs disk space, so it is reported, not fatal.
    std::vector<std::filesystem::path> old;
    for (const auto& e : std::filesystem::directory_iterator(root)) {
      if (e.is_directory() && e.path().filename() != dir.filename()) old.push_back(e.path());
    }
    for (const auto& p : old) {
      const std::error_code ec = RemoveTree(p);
      if (ec)
        std::fprintf(stderr, "warning: cannot remove old checkpoint %s: %s\n", p.c_str(),
                     ec.message().c_str());
    }
  }
  comm.Barrier();
}

// Loads the union of every shard of a checkpoint; returns its step.
int64_t LoadCheckpoint(const std::filesystem::path& dir, ShardedAdamW& opt, TrainHooks& hooks) {
  auto manifest = nlohmann::json::parse(ReadFile(dir / "manifest.json"));
  int64_t step = manifest.at("step").get<int64_t>();
  int ranks = manifest.at("ranks").get<int>();
  std::vector<std::shared_ptr<const SafetensorsFile>> files;
  std::map<std::string, torch::Tensor> state;
  for (int r = 0; r < ranks; ++r) {
    auto f = SafetensorsFile::Open(dir / ("rank-" + std::to_string(r) + ".safetensors"));
    for (const auto& t : f->tensors()) state[t.name] = TensorView(*f, t).clone();
    files.push_back(f);
  }
  // Row shards of sharded parameters, cut for this run's rank count.
  std::vector<std::string> names;
  for (size_t i = 0; i < opt.size(); ++i) names.push_back(opt.name(i));
  ReshardRowState(state, names);
  // Every rank restores every parameter (it may own different ones than before) ...
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < opt.size(); ++i) {
    auto it = state.find(opt.name(i) + ".master");
    if (it == state.end()) throw Error("checkpoint " + dir.string() + ": no " + opt.name(i));
    torch::Tensor p = opt.param(i).detach();
    p.copy_(it->second.to(p.device()));
  }
  // ... and takes the optimizer state of what it owns now.
  for (auto& [k, v] : state) v = v.to(opt.param(0).device());
  opt.LoadState(state, step);
  hooks.LoadCheckpointState(state);
  return step;
}

void CheckLossFinite(double loss, int64_t step, const TrainOptions& options) {
  if (!std::isfinite(loss))
    throw Error(
        "non-finite loss (" + std::to_string(loss) + ") at step " + std::to_string(step + 1) +
        "; stopping. The last good checkpoint is kept in " +
        (options.checkpoint_dir.empty() ? std::string("(none)") : options.checkpoint_dir.string()));
}

}  // namespace

void InstallStopSignalHandlers() {
  std::signal(SIGTERM, OnStopSignal);
  std::signal(SIGINT, OnStopSignal);
}
bool StopRequested() { return g_stop.load(); }

TrainResult TrainLoop(LlamaForCausalLM& model, std::vector<TrainableTensor> params,
                      const std::vector<std::vector<int32_t>>& samples, TrainHooks& hooks,
                      Communicator& comm, ProgressSink& progress, const TrainOptions& options,
                      std::unique_ptr<ShardedAdamW>* optimizer_out) {
  if (samples.empty()) throw Error("training needs at least one calibration sample");
  if (options.total_steps <= 0) throw Error("training needs at least one step");
  auto opt = std::make_unique<ShardedAdamW>(
      std::move(params), options.optimizer_comm ? *options.optimizer_comm : comm, AdamWOptions{},
      options.master_dtype, options.offload_optimizer);
  if (options.overlap_communication) opt->EnableOverlap();
  bool overlap_update = options.overlap_update;
  if (overlap_update && !hooks.SupportsTensorUpdates()) {
    overlap_update = false;
    if (comm.rank() == 0)
      progress.Log(
          "overlap_update: this method's owner-side hooks need every gradient first; AdamW and "
          "the hooks run after backward instead (serial path)");
  }
  if (overlap_update) {
    opt->EnableOverlappedUpdate();
    if (comm.rank() == 0)
      progress.Log("overlap_update: AdamW and the owner-side hooks run during the last backward");
  }
  if (comm.rank() == 0) progress.Log(opt->plan().Describe());
  TrainResult result;
  const torch::Device device = model.device();
  int64_t start = 0;
  if (options.resume) {
    if (auto ckpt = NewestCheckpoint(options.checkpoint_dir)) {
      start = LoadCheckpoint(*ckpt, *opt, hooks);
      result.resumed_from = start;
      if (comm.rank() == 0)
        progress.Log("resumed from " + ckpt->string() + " at step " + std::to_string(start));
    } else if (comm.rank() == 0) {
      progress.Log("no complete checkpoint to resume from; starting fresh");
    }
  }
  std::unique_ptr<HistoryWriter> history;
  if (comm.rank() == 0 && !options.history_csv.empty())
    history = std::make_unique<HistoryWriter>(options.history_csv, start > 0);

  const LinearWarmupSchedule schedule(options.lr, options.total_steps, options.warmup_ratio);
  const auto t0 = Clock::now();
  double loss_value = 0;
  for (int64_t step = start; step < options.total_steps; ++step) {
    if (StopRequested() || progress.CancelRequested()) {
      if (!options.checkpoint_dir.empty() && step > start)
        WriteCheckpoint(options.checkpoint_dir, step, *opt, hooks, comm, loss_value);
      result.interrupted = true;
      break;
    }
    WatchdogBeat("step " + std::to_string(step + 1) + " of " + std::to_string(options.total_steps));
    const auto ts = Clock::now();
    hooks.BeforeStep(step, options.total_steps);
    opt->ZeroGrad();
    const double lr = schedule.LearningRate(step);
    if (overlap_update) {
      hooks.BeginTensorUpdates(*opt);
      ShardedAdamW& o = *opt;
      opt->BeginTensorUpdates(lr, {[&hooks, &o](size_t i) { hooks.OwnerBeforeUpdateTensor(o, i); },
                                   [&hooks, &o](size_t i) { hooks.OwnerAfterUpdateTensor(o, i); }});
    }
    // The global batch of this step and its token count (known to every rank: no communication).
    std::vector<const std::vector<int32_t>*> batch;
    int64_t global_tokens = 0;
    for (int64_t j = 0; j < options.seqs_per_step; ++j) {
      const auto& s = samples[static_cast<size_t>((step * options.seqs_per_step + j) %
                                                  static_cast<int64_t>(samples.size()))];
      batch.push_back(&s);
      global_tokens += static_cast<int64_t>(s.size()) - 1;
    }
    if (global_tokens <= 0) throw Error("calibration sequences must hold at least 2 tokens");
    torch::Tensor local_loss = torch::zeros({1}, torch::dtype(torch::kFloat64).device(device));
    BatchSchedule sched{static_cast<size_t>(options.total_steps * options.seqs_per_step),
                        static_cast<size_t>(options.seqs_per_step), false};
    std::vector<size_t> share =
        RankShare(sched, static_cast<size_t>(step), comm.rank(), comm.size());
    const size_t micro =
        std::max<size_t>(1, (share.size() + static_cast<size_t>(options.grad_accum) - 1) /
                                static_cast<size_t>(options.grad_accum));
    bool extra_added = false;
    // With the overlapped update, weights change during the last backward pass: the global loss
    // must be known finite before it (one all-reduce and one sync, the first collective of the
    // step on every rank, before any gradient reduce).
    bool loss_checked = false;
    auto check_loss_now = [&] {
      torch::Tensor total = local_loss.clone();
      comm.AllReduceSum(total);
      loss_value = total.item<double>();
      CheckLossFinite(loss_value, step, options);
      loss_checked = true;
    };
    for (size_t first = 0; first < share.size(); first += micro) {
      const size_t count = std::min(micro, share.size() - first);
      int64_t len = 0;
      for (size_t k = 0; k < count; ++k) {
        const auto& s =
            *batch[share[first + k] - static_cast<size_t>(step * options.seqs_per_step)];
        len = std::max<int64_t>(len, static_cast<int64_t>(s.size()) - 1);
      }
      // Right padding: causal attention keeps real tokens from seeing pads; pad labels are ignored.
      torch::Tensor inputs = torch::zeros({static_cast<int64_t>(count), len}, torch::kInt64);
      torch::Tensor labels = torch::full({static_cast<int64_t>(count), len}, -100, torch::kInt64);
      for (size_t k = 0; k < count; ++k) {
        const auto& s =
            *batch[share[first + k] - static_cast<size_t>(step * options.seqs_per_step)];
        auto ids = torch::tensor(std::vector<int64_t>(s.begin(), s.end()), torch::kInt64);
        const int64_t n = ids.size(0) - 1;
        inputs[static_cast<int64_t>(k)].narrow(0, 0, n).copy_(ids.narrow(0, 0, n));
        labels[static_cast<int64_t>(k)].narrow(0, 0, n).copy_(ids.narrow(0, 1, n));
      }
      inputs = inputs.to(device);
      labels = labels.to(device);
      torch::Tensor logits = options.activation_checkpointing ? CheckpointedForward(model, inputs)
                                                              : model.forward(inputs);
      torch::Tensor nll = torch::nn::functional::cross_entropy(
          logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32), labels.reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions()
              .reduction(torch::kSum)
              .ignore_index(-100));
      torch::Tensor loss = nll / static_cast<double>(global_tokens);
      if (comm.rank() == 0 && !extra_added) {
        torch::Tensor extra = hooks.ExtraLoss();
        if (extra.defined()) loss = loss + extra;
        extra_added = true;
      }
      local_loss += loss.detach().to(torch::kFloat64);
      if (first + micro >= share.size()) {  // this rank's last backward
        if (overlap_update) check_loss_now();
        opt->ArmOverlap();
      }
      loss.backward();
    }
    if (comm.rank() == 0 && !extra_added) {
      torch::Tensor extra = hooks.ExtraLoss();
      if (extra.defined()) {
        local_loss += extra.detach().to(torch::kFloat64);
        if (overlap_update) check_loss_now();
        opt->ArmOverlap();  // the only backward of this rank's step
        extra.backward();
      }
    }
    if (overlap_update && !loss_checked) check_loss_now();  // this rank ran no backward
    // Overlapped: backward is done when the current stream is; the side stream's tail (updates not
    // hidden by backward) is waited for below and counts as optimizer time.
    if (overlap_update) {
      CurrentStreamSync(device);
    } else {
      DeviceSync(device);
    }
    const auto t_fb = Clock::now();
    opt->ReduceGradients();
    if (overlap_update) {
      CurrentStreamSync(device);
    } else {
      comm.AllReduceSum(local_loss);
      DeviceSync(device);
    }
    const auto t_comm1 = Clock::now();
    if (!overlap_update) {
      loss_value = local_loss.item<double>();
      CheckLossFinite(loss_value, step, options);
      hooks.OwnerBeforeUpdate(*opt);
    }
    // Overlapped: only the tensors not updated during backward are left (before + AdamW here,
    // after + the side stream's join below).
    opt->Step(lr);
    DeviceSync(device);
    const auto t_opt = Clock::now();
    if (overlap_update) {
      opt->FinishTensorUpdates();
      hooks.EndTensorUpdates(*opt);
    } else {
      hooks.OwnerAfterUpdate(*opt);
    }
    DeviceSync(device);
    const auto t_prox = Clock::now();
    opt->Publish();
    DeviceSync(device);
    const auto t_pub = Clock::now();

    std::map<std::string, double> phases = {
        {"forward_backward", Seconds(ts, t_fb)},
        {"communication", Seconds(t_fb, t_comm1) + Seconds(t_prox, t_pub)},
        {"optimizer", Seconds(t_comm1, t_opt)},
        {"prox", Seconds(t_opt, t_prox)}};
    for (const auto& [k, v] : phases) result.phase_seconds[k] += v;
    result.tokens += global_tokens;
    result.steps_done = step + 1;
    result.final_loss = loss_value;

    const bool last = step + 1 == options.total_steps;
    if ((step + 1) % std::max(1, options.log_every) == 0 || last || step == start) {
      MaskCounts c = hooks.Counts(*opt);
      torch::Tensor counts = torch::tensor({c.groups, c.nm, c.mid, c.dense, c.flips}, torch::kInt64)
                                 .to(torch::kFloat64)
                                 .to(device);
      comm.AllReduceSum(counts);
      counts = counts.cpu();
      auto at = [&](int i) { return counts[i].item<double>(); };
      const double elapsed = Seconds(t0, Clock::now());
      const int64_t done = step + 1 - start;
      ProgressEvent e;
      e.step = step + 1;
      e.total_steps = options.total_steps;
      e.stage = options.stage;
      e.loss = loss_value;
      e.lr = lr;
      if (at(0) > 0) {
        e.nm_ratio = at(1) / at(0);
        e.mid_ratio = at(2) / at(0);
        e.dense_ratio = at(3) / at(0);
        e.mask_flips = static_cast<int64_t>(at(4));
      }
      e.tokens_per_s = static_cast<double>(result.tokens) / std::max(elapsed, 1e-9);
      e.eta_s =
          elapsed / static_cast<double>(done) * static_cast<double>(options.total_steps - step - 1);
      e.phase_seconds = phases;
      e.rank = comm.rank();
      if (comm.rank() == 0) {
        progress.Progress(e);
        if (history)
          history->Add({e.step, e.loss, e.lr, at(0) > 0 ? e.nm_ratio : 0,
                        at(0) > 0 ? e.mid_ratio : 0, at(0) > 0 ? e.dense_ratio : 0,
                        e.mask_flips < 0 ? 0 : e.mask_flips, e.tokens_per_s, elapsed});
      }
    }
    if (options.checkpoint_every > 0 && !options.checkpoint_dir.empty() &&
        (step + 1) % options.checkpoint_every == 0 && !last) {
      WriteCheckpoint(options.checkpoint_dir, step + 1, *opt, hooks, comm, loss_value);
      if (comm.rank() == 0)
        progress.Checkpoint(step + 1, options.checkpoint_dir / StepDirName(step + 1));
    }
  }
  result.seconds = Seconds(t0, Clock::now());
  if (optimizer_out) *optimizer_out = std::move(opt);
  return result;
}

}  // namespace ps

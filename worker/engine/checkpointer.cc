#include "worker/engine/checkpointer.h"

#include <torch/autograd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>
#include <vector>

#include "common/error.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "worker/io/tensor_io.h"

namespace ps {
namespace {

std::string StepDirName(int64_t step) {
  std::string s = std::to_string(step);
  return "step-" + std::string(s.size() < 8 ? 8 - s.size() : 0, '0') + s;
}

std::filesystem::path ShardFile(const std::filesystem::path& dir, int rank) {
  return dir / ("rank-" + std::to_string(rank) + ".safetensors");
}

// Older complete checkpoints are superseded; keep only `keep` (listed first, removed afterwards,
// by RemoveTree: std::filesystem::remove_all crashed here with the CUDA LibTorch). A failed
// removal only costs disk space, so it is reported, not fatal.
void RemoveOthers(const std::filesystem::path& root, const std::filesystem::path& keep) {
  std::vector<std::filesystem::path> old;
  for (const auto& e : std::filesystem::directory_iterator(root)) {
    if (e.is_directory() && e.path().filename() != keep.filename()) old.push_back(e.path());
  }
  for (const auto& p : old) {
    if (const std::error_code ec = RemoveTree(p))
      std::fprintf(stderr, "warning: cannot remove old checkpoint %s: %s\n", p.c_str(),
                   ec.message().c_str());
  }
}

// Loads the union of every shard of a checkpoint into opt and hooks; returns its step.
int64_t Load(const std::filesystem::path& dir, ShardedAdamW& opt, TrainHooks& hooks) {
  auto manifest = nlohmann::json::parse(ReadFile(dir / "manifest.json"));
  const int64_t step = manifest.at("step").get<int64_t>();
  const int ranks = manifest.at("ranks").get<int>();
  std::map<std::string, torch::Tensor> state;
  for (int r = 0; r < ranks; ++r) {
    auto f = SafetensorsFile::Open(ShardFile(dir, r));
    for (const auto& t : f->tensors()) state[t.name] = TensorView(*f, t).clone();
  }
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

}  // namespace

Checkpointer::Checkpointer(std::filesystem::path dir, Communicator& comm)
    : dir_(std::move(dir)), comm_(comm) {}

std::optional<std::filesystem::path> Checkpointer::Newest(const std::filesystem::path& dir) {
  std::optional<std::filesystem::path> best;
  if (dir.empty() || !std::filesystem::exists(dir)) return best;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_directory() || !std::filesystem::exists(e.path() / "manifest.json")) continue;
    if (!best || e.path().filename().string() > best->filename().string()) best = e.path();
  }
  return best;
}

int64_t Checkpointer::Resume(ShardedAdamW& opt, TrainHooks& hooks, ProgressSink& progress) {
  const auto ckpt = Newest(dir_);
  if (!ckpt) {
    if (comm_.rank() == 0) progress.Log("no complete checkpoint to resume from; starting fresh");
    return 0;
  }
  const int64_t step = Load(*ckpt, opt, hooks);
  if (comm_.rank() == 0)
    progress.Log("resumed from " + ckpt->string() + " at step " + std::to_string(step));
  return step;
}

std::filesystem::path Checkpointer::Save(int64_t step, ShardedAdamW& opt, TrainHooks& hooks,
                                         double loss) {
  const auto dir = dir_ / StepDirName(step);
  if (!enabled()) return dir;
  if (comm_.rank() == 0) std::filesystem::create_directories(dir);
  comm_.Barrier();
  std::filesystem::create_directories(dir);  // shared or node-local filesystem alike
  auto state = opt.OwnedState();
  for (auto& kv : hooks.CheckpointState()) state.push_back(std::move(kv));
  SaveTensors(ShardFile(dir, comm_.rank()), state, {{"step", std::to_string(step)}});
  comm_.Barrier();  // every shard is on disk before the manifest says so
  if (comm_.rank() == 0) {
    const nlohmann::json m = {{"step", step},
                              {"ranks", comm_.size()},
                              {"loss", loss},
                              {"format", "proxsparse-checkpoint-v1"}};
    WriteFileAtomic(dir / "manifest.json", m.dump(2));
    RemoveOthers(dir_, dir);
  }
  comm_.Barrier();
  return dir;
}

}  // namespace ps

// Training checkpoints: one directory per step (step-00000040/) holding every rank's shard of the
// optimizer state (rank-R.safetensors: what that rank owns, plus the method's extra state) and a
// manifest.json written last, so that a directory with a manifest is complete. Saving keeps only
// the newest complete checkpoint. Resuming reads the union of every shard, so a run may resume on
// any rank count: each rank restores every parameter and takes the optimizer state of what it
// owns now.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/distributed/sharded_adamw.h"
#include "worker/methods/train_hooks.h"

namespace ps {

class Checkpointer {
 public:
  // `dir` empty: no checkpoints (Save and Resume do nothing).
  Checkpointer(std::filesystem::path dir, Communicator& comm);
  bool enabled() const { return !dir_.empty(); }

  // Loads the newest complete checkpoint into `opt` and `hooks`; returns its step, 0 when there
  // is none (logged either way on rank 0).
  int64_t Resume(ShardedAdamW& opt, TrainHooks& hooks, ProgressSink& progress);
  // Every rank writes its shard, then rank 0 the manifest (`loss` recorded) and removes older
  // checkpoints. Collective. Returns the checkpoint's directory.
  std::filesystem::path Save(int64_t step, ShardedAdamW& opt, TrainHooks& hooks, double loss);

  // The newest directory under `dir` with a manifest, if any.
  static std::optional<std::filesystem::path> Newest(const std::filesystem::path& dir);

 private:
  std::filesystem::path dir_;
  Communicator& comm_;
};

}  // namespace ps

// The methods, driven for the job runner: ProxSparse's and MaskLLM's training (through the shared
// loop), the layer-wise one-shot methods (magnitude, Wanda, SparseGPT), and the optional masked
// gradient update after any method. Masks are bool [out, in] on the CPU, keyed by
// parameter name ("model.layers.0.self_attn.q_proj.weight").
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/engine/train_loop.h"
#include "worker/models/llama_model.h"

namespace ps {

class ShardedLinearWeights;  // worker/distributed/parallelize_llama.h

using MaskMap = std::map<std::string, torch::Tensor>;
struct RowBlock;  // worker/distributed/parallelize_llama.h

// Whether the job's masks are held as row blocks: parallel.shard: params on more than one rank.
// Then every MaskMap the runners fill or read (the method's masks, the reconstruction's fixed
// masks, the masked update's) holds for each target only this rank's rows of the mask: the same
// RowShard block as its weight rows, bool [rows, in]. No rank holds a whole mask but rank 0, one
// at a time, while it publishes (row_sharded_publish.h). Otherwise every rank holds every whole
// mask [out, in].
bool MasksHeldAsRows(const JobSpec& spec, const Communicator& comm);
// This rank's rows `r` of the mask of `name`: the held tensor itself when masks are held as rows
// (checked to be r.len rows), else those rows of the whole mask. ps::Error when there is none.
torch::Tensor MaskRows(const MaskMap& masks, const std::string& name, RowBlock r,
                       bool held_as_rows);
// Bytes of mask this rank holds (1 per element of every held bool mask).
int64_t HeldMaskBytes(const MaskMap& masks);

// What every method runner works with.
struct MethodInputs {
  LlamaForCausalLM& model;
  const JobSpec& spec;
  const std::vector<std::vector<int32_t>>& samples;  // calibration sequences (empty: none needed)
  const std::filesystem::path& out;                  // the job's output directory
  bool resume;                                       // continue from the newest checkpoint
  Communicator& comm;
  ProgressSink& progress;
  // parallel.shard: params: the target rows the model was loaded with (sharded_load.h); null:
  // the method shards the whole weights itself.
  ShardedLinearWeights* sharded = nullptr;
};

// What a method run leaves besides its masks: its summary, filed under report_key in report.json.
struct MethodOutcome {
  std::string report_key;
  nlohmann::json summary;
};

// Runs spec.method.name (one of common/method_registry.h's Methods()) on every rank; fills
// `masks` on every rank (each rank's rows when MasksHeldAsRows).
MethodOutcome RunMethod(const MethodInputs& in, MaskMap& masks);
// Whether RunMethod knows `name` (every registered method must have a runner).
bool HasRunner(std::string_view name);

// This rank's share of the calibration samples (contiguous, data/sharding.h rules).
std::vector<std::vector<int32_t>> RankSamples(const std::vector<std::vector<int32_t>>& samples,
                                              const Communicator& comm);

// Prunes `model` in place with magnitude / Wanda / SparseGPT; statistics all-reduced over ranks.
// With `restore_dense` the dense weights are put back (a prior for MaskLLM). With `sharded` (the
// model loaded row-sharded, parallel.shard: params) each rank prunes its own rows
// (methods/layerwise.h). Returns the masks on every rank: with `sharded` on more than one rank
// this rank's rows of each (MasksHeldAsRows), else the whole masks.
MaskMap RunOneShot(LlamaForCausalLM& model, const std::string& method, const JobSpec& spec,
                   const std::vector<std::vector<int32_t>>& samples, Communicator& comm,
                   ProgressSink& progress, bool restore_dense, nlohmann::json* summary,
                   ShardedLinearWeights* sharded = nullptr);

// ProxSparse training of the targets (and, with trainable = all, every parameter); fills `masks`
// on every rank (with parallel.shard: params each rank's rows of them) and returns the training
// summary. With parallel.shard: params the targets are trained as row shards: `sharded` when the
// model was loaded so, else sharded here.
nlohmann::json RunProxSparse(LlamaForCausalLM& model, const JobSpec& spec,
                             const std::vector<std::vector<int32_t>>& samples,
                             const std::filesystem::path& out, bool resume, Communicator& comm,
                             ProgressSink& progress, MaskMap& masks,
                             ShardedLinearWeights* sharded = nullptr);

// MaskLLM over the frozen model, prior from spec.method.prior; returns the final masks.
nlohmann::json RunMaskLlm(LlamaForCausalLM& model, const JobSpec& spec,
                          const std::vector<std::vector<int32_t>>& samples,
                          const std::filesystem::path& out, bool resume, Communicator& comm,
                          ProgressSink& progress, MaskMap& masks);

// Trains the kept weights with the masks fixed (model weights must already be the pruned ones).
// Returns the training summary; the model then holds the updated weights. With parallel.shard:
// params each rank trains its rows of the targets (`sharded` when the model was loaded so, else
// sharded here), as ProxSparse's training does; `masks` are then each rank's rows on more than one
// rank (MasksHeldAsRows).
nlohmann::json RunMaskedUpdate(LlamaForCausalLM& model, const JobSpec& spec, const MaskMap& masks,
                               const std::vector<std::vector<int32_t>>& samples,
                               const std::filesystem::path& out, Communicator& comm,
                               ProgressSink& progress, ShardedLinearWeights* sharded = nullptr);

// The training-loop settings every training method shares, from the job's method section
// (num_samples: calibration sequences per epoch).
TrainOptions BaseTrainOptions(const JobSpec& spec, int64_t num_samples);

// The calibration sequences in the order a training run of `options.total_steps` steps of
// `options.seqs_per_step` sequences consumes them (TrainLoop's `samples`): epoch 0 in sampling
// order, every later epoch a seeded permutation (data/calibration.h EpochOrder), as many epochs
// as the steps need. Every training method (ProxSparse, MaskLLM, masked update) orders its data
// through this, so a given seed and step count see the same sequences whatever the method.
std::vector<std::vector<int32_t>> EpochOrderedSamples(
    const std::vector<std::vector<int32_t>>& samples, const TrainOptions& options, uint64_t seed);

// Draws the history plot; a missing or failing gnuplot is a logged warning, not a failed job.
void PlotOrWarn(const std::filesystem::path& out, const std::string& csv, const std::string& png,
                const JobSpec& spec, const std::string& title, ProgressSink& progress);

// Summary of a finished TrainLoop run for the report.
nlohmann::json TrainSummary(const TrainResult& r, int ranks);

}  // namespace ps

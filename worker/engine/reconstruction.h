// Reconstruction of the kept weights on a fixed mask (job key `reconstruct: obs`): after any method
// has chosen its masks, SparseGPT's layer-by-layer OBS update runs with those masks held fixed
// (PruneLayerwise with fixed_masks; docs/methods/reconstruction.md). The same calibration samples
// and Hessians as SparseGPT would use, the same true-sequential rounds, the masks unchanged bit for
// bit; only the kept weights are re-solved. `reconstruct: lsq` solves each linear's kept weights
// exactly on its mask (MaskedLeastSquares) instead of SparseGPT's sequential OBS update.
#pragma once

#include <torch/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/job_spec.h"
#include "common/progress.h"
#include "worker/distributed/communicator.h"
#include "worker/engine/method_runners.h"
#include "worker/models/llama_model.h"

namespace ps {

// `model` must hold the dense (original) weights: each pruned weight's original value is what the
// update compensates. On return the targets hold the reconstructed weights (zero outside the
// masks). Statistics are all-reduced over ranks. With `sharded` (the model loaded row-sharded,
// parallel.shard: params) each rank reconstructs its own rows (methods/layerwise.h). Returns the
// report's "reconstruction" summary (method, seconds, calibration tokens, the summed layer error).
// Throws ps::Error when a mask is missing or is not N:M.
nlohmann::json RunReconstruction(LlamaForCausalLM& model, const JobSpec& spec, const MaskMap& masks,
                                 const std::vector<std::vector<int32_t>>& samples,
                                 Communicator& comm, ProgressSink& progress,
                                 ShardedLinearWeights* sharded = nullptr);

}  // namespace ps

// The layer-wise one-shot driver: magnitude, Wanda and SparseGPT "as their papers do".
//
// Hidden states of all calibration samples go through the decoder one layer at a time. For each
// layer: the inputs of its target linears are captured through the input hooks and accumulated
// into statistics (fp64), the linears are pruned, then the layer is run again with the pruned
// weights and its outputs become the next layer's inputs (pruning error propagates like the
// references'). Memory: one hidden-state tensor per sample for one layer at a time, plus the
// statistics of one layer.
//
// Order inside a layer (from the references):
//   Wanda (locuslab/wanda prune_wanda): one pass collects all 7 linears' column norms from the
//     unpruned layer, then all 7 are pruned.
//   SparseGPT (IST-DASLab/sparsegpt llama_sequential): with true_sequential (the reference's
//     --true-sequential) four rounds [k,v,q] → [o] → [up,gate] → [down], each collecting statistics
//     with the earlier rounds already pruned; without it one round of all 7, like Wanda (the
//     reference's default, and what Wanda's repository runs for SparseGPT).
// Linears that share an input (q/k/v; gate/up) share one statistics object.
//
// Reconstruction (`fixed_masks`, SparseGPT only): the same layer-by-layer SparseGPT pass with every
// linear's mask given instead of chosen (SparseGptReconstruct): the same Hessians from the same
// samples, the same true-sequential rounds, the kept weights re-solved, the masks returned as
// given; with `fixed_masks_exact` the same pass solves each linear's kept weights exactly
// (MaskedLeastSquares) instead. The model must hold its dense weights on entry (the update
// compensates each pruned weight's original value).
//
// Ranks: each rank passes its own share of the samples; `all_reduce_sum` (when set) is called on
// every raw statistics tensor before pruning, the same number of times in the same order on every
// rank, so all ranks compute identical masks and weights.
//
// Row-sharded targets (`rows`, parallel.shard: params on more than one rank): no rank holds the
// whole model. The pruning step of every method is row-independent: magnitude and Wanda score
// each row's groups by themselves (|W|, |W|·‖x‖), SparseGPT's and the least-squares solves share
// the input-side Hessian (all-reduced as above) and then solve each row by itself. So each rank
// prunes only its own rows of each linear and keeps only those rows of each mask (the masks in and
// out are the rank's rows: a full mask is never built on any rank). The forward passes of a layer
// run on that layer's full weights, gathered once when the layer starts and again after each linear
// is pruned (RowShardedTargets::Hold), and freed when the layer is done: a rank holds one layer
// whole, never the model. Because the forwards then need no collective, each rank runs only its own
// share of the samples, as without sharding, and the statistics are the same sums.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "common/nm_pattern.h"
#include "worker/methods/sparsegpt.h"
#include "worker/models/llama_model.h"

namespace ps {

enum class OneShotMethod { kMagnitude, kWanda, kSparseGpt };
// "magnitude" | "wanda" | "sparsegpt"; ps::Error naming the text otherwise.
OneShotMethod ParseOneShotMethod(const std::string& name);

// Targets held as blocks of whole rows over ranks (see above; the engine's implementation over
// ShardedLinearWeights is worker/engine/layerwise_rows.h). Calls marked collective are made by
// every rank in the same order.
class RowShardedTargets {
 public:
  virtual ~RowShardedTargets() = default;
  // This rank's rows of `lin`'s weight; the pruning writes them in place.
  virtual torch::Tensor Local(const Linear& lin) = 0;
  // Collective: `lin`'s forward uses its full weight, gathered now from the current rows, until
  // Release (collective too).
  virtual void Hold(Linear& lin) = 0;
  virtual void Release(Linear& lin) = 0;
};

struct LayerwiseOptions {
  OneShotMethod method = OneShotMethod::kWanda;
  NMPattern pattern = k2of4;
  SparseGptOptions sparsegpt;  // blocksize, percdamp (the update runs in fp32 unless set)
  bool true_sequential = true;
  torch::ScalarType stats_dtype = torch::kFloat64;
  // Restore every target's original dense weight at the end (for computing a prior mask, e.g.
  // MaskLLM's SparseGPT prior, without keeping SparseGPT's weight update).
  bool restore_dense_weights = false;
  std::function<void(torch::Tensor&)> all_reduce_sum;  // empty: single rank
  // SparseGPT's per-linear solves spread over ranks: the k-th solve (in the driver's fixed order)
  // runs on rank k % ranks, which broadcasts the pruned weight, mask and error with
  // `broadcast(t, root)` (the same calls in the same order on every rank). Empty: every rank
  // solves every linear itself.
  int rank = 0;
  int ranks = 1;
  std::function<void(torch::Tensor&, int root)> broadcast;
  // SparseGPT only: the mask of every target linear (bool [out, in], by HF module name; with
  // `rows` this rank's rows of it, [rows, in]), used as is instead of SparseGPT's own selection.
  // Null: SparseGPT chooses.
  const std::map<std::string, torch::Tensor>* fixed_masks = nullptr;
  // With fixed_masks: each linear's kept weights from SparseGPT's sequential OBS update
  // (SparseGptReconstruct, false) or from the exact least-squares solve on the mask
  // (MaskedLeastSquares, mask_lsq.h; true). Same Hessians, rounds and damping either way.
  bool fixed_masks_exact = false;
  // Row-sharded targets (see above); null: every rank holds whole weights. Needs
  // `all_reduce_sum`; `broadcast` (the spread of whole-linear solves) is not used with it.
  RowShardedTargets* rows = nullptr;
  // Called after each layer (layer index, number of layers) for progress reporting.
  std::function<void(int64_t, int64_t)> on_layer_done;
};

struct LayerwiseResult {
  // bool [out, in] by HF module name, on CPU (with `rows`: this rank's rows of each, [rows, in])
  std::map<std::string, torch::Tensor> masks;
  std::map<std::string, double> sparsegpt_error;  // SparseGPT's reconstruction error per linear
  int64_t calibration_tokens = 0;  // tokens seen by the statistics (after the all-reduce)
};

// Prunes every target linear of `model` in place (weights become W ⊙ mask, or SparseGPT's updated
// weights; with `rows`, this rank's rows of them) and returns the masks (with `rows`, this rank's
// rows of them; with `fixed_masks`, those masks). `samples` are token ids (this
// rank's share; may be empty for magnitude). ps::Error on a sample with an id outside the
// vocabulary or an empty sample, or when Wanda/SparseGPT get no tokens at all.
LayerwiseResult PruneLayerwise(LlamaForCausalLM& model,
                               const std::vector<std::vector<int32_t>>& samples,
                               const LayerwiseOptions& options);

}  // namespace ps

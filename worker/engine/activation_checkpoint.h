// Activation checkpointing per decoder layer, applied from outside the model: the forward pass
// keeps only each layer's input; backward reruns the layer's forward (with the random-number state
// the first run saw, so anything random inside the layer, e.g. a weight transform's noise, comes
// out the same) and backpropagates through it. LibTorch C++ has no torch.utils.checkpoint; this is
// its re-entrant form as a torch::autograd::Function: the rerun's backward accumulates into the
// parameters' (and any other leaf's) .grad exactly as an ordinary backward would, firing their
// gradient hooks, so optimizers and overlap hooks see no difference. Memory: per layer its input
// [B, T, hidden] instead of everything its backward reads (docs/distributed.md, memory planner).
#pragma once

#include <torch/types.h>

#include "worker/models/llama_model.h"

namespace ps {

// layer.forward(h, rope) with the layer's activations recomputed in backward. Without grad mode
// (evaluation) it is the plain forward.
torch::Tensor CheckpointedLayer(DecoderLayer& layer, const torch::Tensor& h,
                                const RopeTables& rope);

// model.forward(ids) (no cache) with every decoder layer checkpointed: same logits, same
// gradients.
torch::Tensor CheckpointedForward(LlamaForCausalLM& model, const torch::Tensor& ids);

}  // namespace ps

// The model side of the server: prefill of one new request into its KV slot, and one decode step
// for a batch of running requests at once (each at its own position), so every linear layer
// runs with M = batch rows (the 2:4 decode kernels' batched case on the GPU).
//
// Exactness: prefill is the model's own forward. A decode step computes the same operations as
// the model's cached forward (same RoPE tables, same attention function), row-batched for the
// linears; with `exact_attention` each sequence's attention runs on its own keys alone, so a
// request decoded alone gives bit for bit the tokens of `GreedyGenerate` (`pstool generate`).
// Without it (the GPU default) attention runs once for the whole batch over the longest
// sequence's keys with a mask.
//
// Fixed shapes (`fixed_shapes`, needed for CUDA graphs): a decode step computes one row per slot
// 0..B-1 (B = the smallest bucket above the highest slot decoded) over the first L key positions
// (L rounded up to kLengthBucket), so the step's shapes, and its tensors' addresses, repeat
// across steps. Rows of slots that are not decoded are padding: they write their keys to the
// pool's scratch slot and their logits are dropped. With `cuda_graphs`, each (B, L) step is
// captured once as a CUDA graph and replayed from then on (decode_graphs.h): one launch per
// token instead of hundreds.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "worker/models/llama_model.h"
#include "worker/models/rope.h"
#include "worker/serve/kv_cache.h"

namespace ps::serve {

struct EngineOptions {
  int64_t max_batch = 8;   // KV slots: requests decoded together at most
  int64_t max_len = 2048;  // positions per request (prompt + generated)
  bool exact_attention = true;
  // Decode steps' attention through the decode attention kernel (decode_attention.h; CUDA
  // builds, bf16/fp16, head_dim 64 or 128, else the batched masked call); not with exact.
  bool decode_kernel = false;
  bool fixed_shapes = false;  // implied by cuda_graphs
  bool cuda_graphs = false;   // CUDA only
  // Decode steps' residual add + RMSNorm, RoPE + KV write and SiLU-multiply as one kernel each
  // (decode_fused.h; CUDA builds, bf16/fp16 models, not with exact attention); other dtypes
  // keep the LibTorch ops.
  bool fused_ops = false;
};

class DecodeGraphs;

class Engine {
 public:
  Engine(std::shared_ptr<LlamaForCausalLM> model, const EngineOptions& options);
  ~Engine();

  static constexpr int64_t kLengthBucket = 128;
  // The fixed-shape step's row count for a highest decoded slot `top`: 1, 2, 4, 8, ... (at most
  // the pool's slots), and its key length for a longest position `longest` (1-based).
  int64_t RowBucket(int64_t top) const;
  int64_t LengthBucket(int64_t longest) const;
  // Graphs captured so far (0 without CUDA graphs).
  int64_t graphs() const;
  // Runs every fixed-shape decode step the server can meet once, each (row bucket, length
  // bucket) pair, before any request: a shape's first step is where its CUDA graph is captured
  // and where the 2:4 layers time their paths and kernel variants for that many rows (cuSPARSELt
  // searching its algorithm among them), tens to hundreds of milliseconds that a live request
  // would otherwise wait through mid-decode. Needs every KV slot free (it borrows them and
  // leaves them free and empty); `progress(done, total)` after each step. Returns the steps run:
  // 0 without fixed shapes, whose steps take any row count and so have no set of shapes to warm.
  int64_t WarmUp(const std::function<void(int64_t, int64_t)>& progress = {});
  // Whether decode steps run the fused kernels (EngineOptions::fused_ops, after the dtype check).
  bool fused_ops() const { return options_.fused_ops; }

  LlamaForCausalLM& model() { return *model_; }
  KvCachePool& kv() { return kv_; }
  int64_t max_len() const { return kv_.max_len(); }

  // Runs `ids` (1 <= size <= max_len; at max_len the slot is full, for scoring a prompt only)
  // through the model into `slot` (whose length becomes
  // ids.size()); returns the logits of the last position, [vocab] fp32 on the CPU. With
  // `all_logits`, also every position's logits there ([size, vocab], the model's dtype and
  // device), for scoring the prompt.
  torch::Tensor Prefill(int slot, const std::vector<int32_t>& ids,
                        torch::Tensor* all_logits = nullptr);
  // Appends tokens[i] to slots[i] (distinct, each with room left) and returns the logits of
  // each new position, [n, vocab], where the model computed them: its dtype on its device (so a
  // greedy step can take the argmax there and copy n ids instead of n x vocab logits).
  torch::Tensor Decode(const std::vector<int>& slots, const std::vector<int32_t>& tokens);

 private:
  torch::Tensor DecodeFixed(const std::vector<int>& slots, const std::vector<int32_t>& tokens);
  // The fixed-shape step on the static inputs (ids_, pos_, rows_ of the first `b` rows) over `l`
  // key positions: logits [b, vocab] in the model's dtype, on the device.
  torch::Tensor FixedStep(int64_t b, int64_t l);
  // The decoder layers, final norm and head for one new token per row: keys written at
  // (rows[i], pos[i]) of the pool, attention by `attend(layer, q)`; logits [n, vocab].
  torch::Tensor Layers(const torch::Tensor& ids, const RopeTables& rope, const torch::Tensor& rows,
                       const torch::Tensor& pos,
                       const std::function<torch::Tensor(int64_t, const torch::Tensor&)>& attend);
  // Layers with the fused kernels (options_.fused_ops): the same computation, RoPE from the
  // engine's tables at `pos`.
  torch::Tensor FusedLayers(
      const torch::Tensor& ids, const torch::Tensor& rows, const torch::Tensor& pos,
      const std::function<torch::Tensor(int64_t, const torch::Tensor&)>& attend);
  torch::Tensor Attend(int64_t layer, const torch::Tensor& q, const std::vector<int>& slots,
                       const std::vector<int64_t>& positions);
  // Rows 0..n-1 of q on slots 0..n-1 through the decode attention kernel, or an undefined
  // tensor when it is off or does not handle the case.
  torch::Tensor KernelAttention(int64_t layer, const torch::Tensor& q,
                                const torch::Tensor& positions, int64_t max_keys);

  std::shared_ptr<LlamaForCausalLM> model_;
  EngineOptions options_;
  KvCachePool kv_;
  // Batched mode: RoPE tables of every position, on the model's device, gathered per step
  // (exact mode computes each position's tables as the model does).
  RopeTables rope_all_;
  // Fixed-shape decode: static inputs per row (token, position, slot written), on the device.
  torch::Tensor ids_, pos_, rows_, kpos_;
  std::unique_ptr<DecodeGraphs> graphs_;
};

}  // namespace ps::serve

// The Llama-family decoder as torch::nn modules whose parameter names are exactly Hugging Face's
// (`model.embed_tokens.weight`, `model.layers.3.self_attn.q_proj.weight`, `lm_head.weight`, ...),
// so checkpoints map one to one and every linear is addressable by its HF module name.
//
// What pruning methods get (and nothing more: this code knows no pruning and no parallelism):
//   - TargetLinears(): the q/k/v/o/gate/up/down projections of every layer, in layer order;
//   - Linear::weight is an ordinary parameter: swap it (ReplaceWeight), train it (gradients flow),
//     or route it through a differentiable transform (set_weight_transform, e.g. W ⊙ mask);
//   - input capture: set_input_hook on one linear, or SetInputHook on all targets, sees every
//     input [.., in_features] before the matmul (Wanda/SparseGPT statistics);
//   - layer-at-a-time execution: Embed(), Rope(), layer(i).forward(), FinalNorm(), Logits().
// What inference backends get: set_op on a Linear replaces its matmul (e.g. by a 2:4 kernel that
// holds its own packed copy of the weight), and ReleaseWeight then frees the dense weight.
#pragma once

#include <torch/nn/module.h>
#include <torch/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "worker/models/llama_config.h"
#include "worker/models/rope.h"

namespace ps {

// Called with the linear's HF module name and its input (not detached: do not keep it alive
// longer than needed, and call .detach() before accumulating statistics).
using LinearInputHook = std::function<void(const std::string& name, const torch::Tensor& input)>;
// Maps the stored weight to the weight used in the matmul (must keep its shape).
using WeightTransform = std::function<torch::Tensor(const torch::Tensor& weight)>;

// Computes x Wᵀ for one Linear in place of the dense matmul (no bias: Linear adds it). x is
// [.., in_features]; the result must be [.., out_features] in x's dtype. Implementations keep
// whatever form of the weight they need (worker/sparse: 2:4 packed forms on the GPU).
class LinearOp {
 public:
  virtual ~LinearOp() = default;
  virtual torch::Tensor Forward(const torch::Tensor& x) = 0;
};

class Linear : public torch::nn::Module {
 public:
  Linear(std::string path, int64_t in_features, int64_t out_features, bool bias,
         const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);

  // HF module name, e.g. "model.layers.0.self_attn.q_proj".
  const std::string& path() const { return path_; }
  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }
  // Copies `w` into the weight in place (no autograd record); shapes must match, dtype/device
  // are converted. The parameter object stays the same, so optimizers keep working.
  void ReplaceWeight(const torch::Tensor& w);
  void set_input_hook(LinearInputHook hook) { input_hook_ = std::move(hook); }
  void set_weight_transform(WeightTransform f) { weight_transform_ = std::move(f); }
  // Routes forward through `op` (x Wᵀ, then + bias here); null restores the dense matmul. Input
  // hooks still run; a weight transform does not (the op owns its weight).
  void set_op(std::shared_ptr<LinearOp> op) { op_ = std::move(op); }
  const std::shared_ptr<LinearOp>& op() const { return op_; }
  // Frees the dense weight's storage (it becomes an empty tensor of the same dtype and device),
  // for when an op holds its own copy. Only allowed with an op set (ps::Error otherwise); the
  // parameter object stays registered, so module traversal keeps working.
  void ReleaseWeight();
  bool weight_released() const { return weight_released_; }

  torch::Tensor weight;  // [out, in]; empty after ReleaseWeight
  torch::Tensor bias;    // [out] or undefined

 private:
  std::string path_;
  int64_t in_features_ = 0, out_features_ = 0;
  bool weight_released_ = false;
  std::shared_ptr<LinearOp> op_;
  LinearInputHook input_hook_;
  WeightTransform weight_transform_;
};

class RMSNorm : public torch::nn::Module {
 public:
  RMSNorm(int64_t dim, double eps, const torch::TensorOptions& options);
  // Normalises in fp32 and casts back before the scale, as transformers does.
  torch::Tensor forward(const torch::Tensor& x);
  double eps() const { return eps_; }
  torch::Tensor weight;

 private:
  double eps_;
};

// Cached keys/values of one layer for incremental decoding: [B, Hkv, S, D] each.
struct LayerKvCache {
  torch::Tensor k, v;
};
struct KvCache {
  std::vector<LayerKvCache> layers;
  int64_t length() const {
    return layers.empty() || !layers[0].k.defined() ? 0 : layers[0].k.size(2);
  }
};

class Attention : public torch::nn::Module {
 public:
  Attention(const LlamaConfig& c, const std::string& prefix, const torch::TensorOptions& options);
  // x [B, T, hidden]; rope tables for the T new positions; cache (optional) holds earlier keys.
  torch::Tensor forward(const torch::Tensor& x, const RopeTables& rope,
                        LayerKvCache* cache = nullptr);
  std::shared_ptr<Linear> q_proj, k_proj, v_proj, o_proj;

 private:
  int64_t n_heads_, n_kv_heads_, head_dim_;
  std::optional<int64_t> window_;
};

class Mlp : public torch::nn::Module {
 public:
  Mlp(const LlamaConfig& c, const std::string& prefix, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  std::shared_ptr<Linear> gate_proj, up_proj, down_proj;
};

class DecoderLayer : public torch::nn::Module {
 public:
  DecoderLayer(const LlamaConfig& c, int64_t index, const torch::TensorOptions& options);
  // h + attn(norm(h)), then + mlp(norm(.)). h [B, T, hidden].
  torch::Tensor forward(const torch::Tensor& h, const RopeTables& rope,
                        LayerKvCache* cache = nullptr);
  std::shared_ptr<RMSNorm> input_layernorm, post_attention_layernorm;
  std::shared_ptr<Attention> self_attn;
  std::shared_ptr<Mlp> mlp;
};

class Embedding : public torch::nn::Module {
 public:
  Embedding(int64_t vocab, int64_t dim, const torch::TensorOptions& options);
  torch::Tensor forward(const torch::Tensor& ids);
  torch::Tensor weight;  // [vocab, dim]
};

// HF's LlamaModel: the `model.` prefix.
class LlamaBody : public torch::nn::Module {
 public:
  LlamaBody(const LlamaConfig& c, const torch::TensorOptions& options);
  std::shared_ptr<Embedding> embed_tokens;
  std::vector<std::shared_ptr<DecoderLayer>> layers;  // registered as layers.{i}
  std::shared_ptr<RMSNorm> norm;
};

class LlamaForCausalLM : public torch::nn::Module {
 public:
  // Parameters are allocated uninitialised (torch::empty): load a checkpoint or initialise them.
  LlamaForCausalLM(LlamaConfig config, const torch::TensorOptions& options);

  const LlamaConfig& config() const { return config_; }
  torch::ScalarType dtype() const { return options_.dtype().toScalarType(); }
  torch::Device device() const { return options_.device(); }

  // ids [B, T] (int64) -> logits [B, T, vocab] in the model's dtype. With a cache, ids are the
  // continuation of what the cache holds and the cache is extended.
  torch::Tensor forward(const torch::Tensor& ids, KvCache* cache = nullptr);

  // Layer-at-a-time pieces (forward == Logits(FinalNorm(layer_n(...layer_0(Embed(ids)))))).
  torch::Tensor Embed(const torch::Tensor& ids);
  RopeTables Rope(int64_t start, int64_t len) const;
  int64_t num_layers() const { return static_cast<int64_t>(model->layers.size()); }
  DecoderLayer& layer(int64_t i) { return *model->layers.at(static_cast<size_t>(i)); }
  torch::Tensor FinalNorm(const torch::Tensor& h) { return model->norm->forward(h); }
  torch::Tensor Logits(const torch::Tensor& normed);
  // The output projection's weight (embed_tokens.weight when tied).
  torch::Tensor lm_head_weight() const;

  // The pruning targets: q,k,v,o,gate,up,down of layer 0, then layer 1, ...
  std::vector<std::shared_ptr<Linear>> TargetLinears() const;
  // Any linear by HF module name (targets and, when untied, "lm_head"); ps::Error when unknown.
  Linear& linear(const std::string& path) const;
  // Installs `hook` on every target linear (an empty function removes them).
  void SetInputHook(const LinearInputHook& hook);

  std::shared_ptr<LlamaBody> model;
  std::shared_ptr<Linear> lm_head;  // null when tie_word_embeddings

 private:
  LlamaConfig config_;
  torch::TensorOptions options_;
  torch::Tensor inv_freq_;
};

// While one of these is alive on the calling thread, the model's constructors register every
// parameter as a 0-element tensor of the right dtype and device instead of allocating it, for
// loaders that give each parameter its storage (set_data) only when they fill it, or only part of
// it: no full-size model ever exists. A module whose parameters were never filled fails in
// forward (shape mismatch), never computes on garbage.
class DeferParameterAllocation {
 public:
  DeferParameterAllocation();
  ~DeferParameterAllocation();
  DeferParameterAllocation(const DeferParameterAllocation&) = delete;
  DeferParameterAllocation& operator=(const DeferParameterAllocation&) = delete;

 private:
  bool previous_;
};

// The HF names of the q,k,v,o,gate,up,down linears of layer i.
std::vector<std::string> TargetLinearNames(int64_t layer);

}  // namespace ps

#include "worker/models/llama_model.h"

#include "common/error.h"
#include "worker/models/attention.h"

namespace ps {
namespace {

thread_local bool defer_allocation = false;

// A parameter of `shape`: uninitialised storage, or none under DeferParameterAllocation.
torch::Tensor NewParameter(at::IntArrayRef shape, const torch::TensorOptions& options) {
  return defer_allocation ? torch::empty({0}, options) : torch::empty(shape, options);
}

}  // namespace

DeferParameterAllocation::DeferParameterAllocation() : previous_(defer_allocation) {
  defer_allocation = true;
}
DeferParameterAllocation::~DeferParameterAllocation() { defer_allocation = previous_; }

// ---- Linear ------------------------------------------------------------------------------------

Linear::Linear(std::string path, int64_t in_features, int64_t out_features, bool bias,
               const torch::TensorOptions& options)
    : path_(std::move(path)), in_features_(in_features), out_features_(out_features) {
  weight = register_parameter("weight", NewParameter({out_features, in_features}, options));
  if (bias) this->bias = register_parameter("bias", NewParameter({out_features}, options));
}

torch::Tensor Linear::forward(const torch::Tensor& x) {
  if (input_hook_) input_hook_(path_, x);
  if (op_) {
    torch::Tensor y = op_->Forward(x);
    return bias.defined() ? y + bias : y;
  }
  if (weight_released_) throw Error(path_ + ": the dense weight was released and no op is set");
  torch::Tensor w = weight_transform_ ? weight_transform_(weight) : weight;
  return torch::linear(x, w, bias);
}

void Linear::ReleaseWeight() {
  if (!op_) throw Error(path_ + ": ReleaseWeight needs an op that holds the weight (set_op)");
  torch::NoGradGuard no_grad;
  // set_data swaps the storage of the registered parameter itself, so the module's parameter
  // list sees the empty tensor too and the old storage is freed once nothing else holds it.
  weight.set_data(torch::empty({0}, weight.options()));
  weight_released_ = true;
}

void Linear::ReplaceWeight(const torch::Tensor& w) {
  if (weight_released_) throw Error(path_ + ": the dense weight was released");
  if (w.sizes() != weight.sizes()) {
    throw Error(path_ + ": replacement weight has shape " + c10::str(w.sizes()) + ", expected " +
                c10::str(weight.sizes()));
  }
  torch::NoGradGuard no_grad;
  weight.copy_(w);
}

// ---- RMSNorm, Embedding ------------------------------------------------------------------------

RMSNorm::RMSNorm(int64_t dim, double eps, const torch::TensorOptions& options) : eps_(eps) {
  weight = register_parameter("weight", NewParameter({dim}, options));
}

torch::Tensor RMSNorm::forward(const torch::Tensor& x) {
  auto xf = x.to(torch::kFloat32);
  auto var = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * torch::rsqrt(var + eps_)).to(x.scalar_type());
}

Embedding::Embedding(int64_t vocab, int64_t dim, const torch::TensorOptions& options) {
  weight = register_parameter("weight", NewParameter({vocab, dim}, options));
}

torch::Tensor Embedding::forward(const torch::Tensor& ids) { return torch::embedding(weight, ids); }

// ---- Attention, MLP, layer ---------------------------------------------------------------------

Attention::Attention(const LlamaConfig& c, const std::string& prefix,
                     const torch::TensorOptions& options)
    : n_heads_(c.num_attention_heads),
      n_kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim),
      window_(c.sliding_window) {
  int64_t h = c.hidden_size, d = c.head_dim;
  q_proj = register_module(
      "q_proj", std::make_shared<Linear>(prefix + "q_proj", h, n_heads_ * d, c.qkv_bias, options));
  k_proj = register_module("k_proj", std::make_shared<Linear>(prefix + "k_proj", h, n_kv_heads_ * d,
                                                              c.qkv_bias, options));
  v_proj = register_module("v_proj", std::make_shared<Linear>(prefix + "v_proj", h, n_kv_heads_ * d,
                                                              c.qkv_bias, options));
  o_proj = register_module(
      "o_proj", std::make_shared<Linear>(prefix + "o_proj", n_heads_ * d, h, c.o_bias, options));
}

torch::Tensor Attention::forward(const torch::Tensor& x, const RopeTables& rope,
                                 LayerKvCache* cache) {
  int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj->forward(x).view({B, T, n_heads_, head_dim_}).transpose(1, 2);
  auto k = k_proj->forward(x).view({B, T, n_kv_heads_, head_dim_}).transpose(1, 2);
  auto v = v_proj->forward(x).view({B, T, n_kv_heads_, head_dim_}).transpose(1, 2);
  q = ApplyRope(q, rope);
  k = ApplyRope(k, rope);
  if (cache) {
    if (cache->k.defined()) {
      k = torch::cat({cache->k, k}, 2);
      v = torch::cat({cache->v, v}, 2);
    }
    cache->k = k;
    cache->v = v;
  }
  auto out = CausalAttention(q, k, v, window_);  // [B, H, T, D]
  return o_proj->forward(out.transpose(1, 2).reshape({B, T, n_heads_ * head_dim_}));
}

Mlp::Mlp(const LlamaConfig& c, const std::string& prefix, const torch::TensorOptions& options) {
  int64_t h = c.hidden_size, m = c.intermediate_size;
  gate_proj = register_module(
      "gate_proj", std::make_shared<Linear>(prefix + "gate_proj", h, m, c.mlp_bias, options));
  up_proj = register_module(
      "up_proj", std::make_shared<Linear>(prefix + "up_proj", h, m, c.mlp_bias, options));
  down_proj = register_module(
      "down_proj", std::make_shared<Linear>(prefix + "down_proj", m, h, c.mlp_bias, options));
}

torch::Tensor Mlp::forward(const torch::Tensor& x) {
  return down_proj->forward(torch::silu(gate_proj->forward(x)) * up_proj->forward(x));
}

DecoderLayer::DecoderLayer(const LlamaConfig& c, int64_t index,
                           const torch::TensorOptions& options) {
  std::string prefix = "model.layers." + std::to_string(index) + ".";
  input_layernorm = register_module(
      "input_layernorm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps, options));
  self_attn =
      register_module("self_attn", std::make_shared<Attention>(c, prefix + "self_attn.", options));
  post_attention_layernorm =
      register_module("post_attention_layernorm",
                      std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps, options));
  mlp = register_module("mlp", std::make_shared<Mlp>(c, prefix + "mlp.", options));
}

torch::Tensor DecoderLayer::forward(const torch::Tensor& h, const RopeTables& rope,
                                    LayerKvCache* cache) {
  auto x = h + self_attn->forward(input_layernorm->forward(h), rope, cache);
  return x + mlp->forward(post_attention_layernorm->forward(x));
}

// ---- the model ---------------------------------------------------------------------------------

namespace {
// Module names may not contain dots, so `layers.{i}` needs a container named `layers`.
class LayerList : public torch::nn::Module {
 public:
  void Add(const std::shared_ptr<DecoderLayer>& layer, int64_t i) {
    register_module(std::to_string(i), layer);
  }
};
}  // namespace

LlamaBody::LlamaBody(const LlamaConfig& c, const torch::TensorOptions& options) {
  embed_tokens = register_module("embed_tokens",
                                 std::make_shared<Embedding>(c.vocab_size, c.hidden_size, options));
  auto list = register_module("layers", std::make_shared<LayerList>());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    layers.push_back(std::make_shared<DecoderLayer>(c, i, options));
    list->Add(layers.back(), i);
  }
  norm = register_module("norm", std::make_shared<RMSNorm>(c.hidden_size, c.rms_norm_eps, options));
}

LlamaForCausalLM::LlamaForCausalLM(LlamaConfig config, const torch::TensorOptions& options)
    : config_(std::move(config)), options_(options) {
  model = register_module("model", std::make_shared<LlamaBody>(config_, options));
  if (!config_.tie_word_embeddings) {
    lm_head =
        register_module("lm_head", std::make_shared<Linear>("lm_head", config_.hidden_size,
                                                            config_.vocab_size, false, options));
  }
  inv_freq_ = RopeInvFreq(config_.rope, config_.head_dim);
}

torch::Tensor LlamaForCausalLM::Embed(const torch::Tensor& ids) {
  return model->embed_tokens->forward(ids.to(options_.device(), torch::kInt64));
}

RopeTables LlamaForCausalLM::Rope(int64_t start, int64_t len) const {
  return ComputeRope(inv_freq_, start, len, options_);
}

torch::Tensor LlamaForCausalLM::lm_head_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

torch::Tensor LlamaForCausalLM::Logits(const torch::Tensor& normed) {
  if (lm_head) return lm_head->forward(normed);
  return torch::linear(normed, model->embed_tokens->weight);
}

torch::Tensor LlamaForCausalLM::forward(const torch::Tensor& ids, KvCache* cache) {
  if (ids.dim() != 2)
    throw Error("model input must be [batch, tokens], got " + c10::str(ids.sizes()));
  int64_t start = 0;
  if (cache) {
    if (cache->layers.empty()) cache->layers.resize(static_cast<size_t>(num_layers()));
    start = cache->length();
  }
  auto h = Embed(ids);
  auto rope = Rope(start, ids.size(1));
  for (int64_t i = 0; i < num_layers(); ++i) {
    h = layer(i).forward(h, rope, cache ? &cache->layers[static_cast<size_t>(i)] : nullptr);
  }
  return Logits(FinalNorm(h));
}

std::vector<std::string> TargetLinearNames(int64_t layer) {
  std::string p = "model.layers." + std::to_string(layer) + ".";
  return {p + "self_attn.q_proj", p + "self_attn.k_proj", p + "self_attn.v_proj",
          p + "self_attn.o_proj", p + "mlp.gate_proj",    p + "mlp.up_proj",
          p + "mlp.down_proj"};
}

std::vector<std::shared_ptr<Linear>> LlamaForCausalLM::TargetLinears() const {
  std::vector<std::shared_ptr<Linear>> out;
  for (const auto& l : model->layers) {
    out.insert(out.end(),
               {l->self_attn->q_proj, l->self_attn->k_proj, l->self_attn->v_proj,
                l->self_attn->o_proj, l->mlp->gate_proj, l->mlp->up_proj, l->mlp->down_proj});
  }
  return out;
}

Linear& LlamaForCausalLM::linear(const std::string& path) const {
  if (lm_head && path == "lm_head") return *lm_head;
  for (const auto& l : TargetLinears()) {
    if (l->path() == path) return *l;
  }
  throw Error("no linear named '" + path + "' in this model");
}

void LlamaForCausalLM::SetInputHook(const LinearInputHook& hook) {
  for (const auto& l : TargetLinears()) l->set_input_hook(hook);
}

}  // namespace ps

#include "worker/serve/engine.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <limits>

#include "common/error.h"
#include "worker/models/attention.h"
#include "worker/models/rope.h"

namespace ps::serve {

namespace {
torch::TensorOptions OptionsOf(const LlamaForCausalLM& m) {
  return torch::dtype(m.dtype()).device(m.device());
}
}  // namespace

Engine::Engine(std::shared_ptr<LlamaForCausalLM> model, const EngineOptions& options)
    : model_(std::move(model)),
      options_(options),
      kv_(model_->config(), options.max_batch, options.max_len, OptionsOf(*model_)) {
  if (!options_.exact_attention) {
    const auto& c = model_->config();
    rope_all_ = ComputeRope(RopeInvFreq(c.rope, c.head_dim), 0, max_len(), OptionsOf(*model_));
  }
}

torch::Tensor Engine::Prefill(int slot, const std::vector<int32_t>& ids) {
  if (ids.empty() || static_cast<int64_t>(ids.size()) >= max_len())
    throw Error("prefill: " + std::to_string(ids.size()) + " tokens do not fit (1.." +
                std::to_string(max_len() - 1) + ")");
  torch::NoGradGuard no_grad;
  KvCache cache;
  auto t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()), torch::kInt64).unsqueeze(0);
  // The model's own forward: the prompt's logits and keys are exactly those of GreedyGenerate.
  const torch::Tensor logits = model_->forward(t, &cache);
  const int64_t n = static_cast<int64_t>(ids.size());
  for (int64_t l = 0; l < model_->num_layers(); ++l) {
    kv_.k(l)[slot].narrow(1, 0, n).copy_(cache.layers[static_cast<size_t>(l)].k[0]);
    kv_.v(l)[slot].narrow(1, 0, n).copy_(cache.layers[static_cast<size_t>(l)].v[0]);
  }
  kv_.set_length(slot, n);
  return logits[0][n - 1].to(torch::kCPU, torch::kFloat32);
}

torch::Tensor Engine::Attend(int64_t layer, const torch::Tensor& q, const std::vector<int>& slots,
                             const std::vector<int64_t>& positions) {
  const auto window = model_->config().sliding_window;
  const int64_t n = q.size(0);
  if (options_.exact_attention || n == 1) {
    // Per sequence, on exactly its keys: what the model's cached forward computes.
    std::vector<torch::Tensor> outs;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t len = positions[static_cast<size_t>(i)] + 1;
      auto k = kv_.k(layer)[slots[static_cast<size_t>(i)]].narrow(1, 0, len).unsqueeze(0);
      auto v = kv_.v(layer)[slots[static_cast<size_t>(i)]].narrow(1, 0, len).unsqueeze(0);
      outs.push_back(CausalAttention(q.narrow(0, i, 1), k.contiguous(), v.contiguous(), window));
    }
    return n == 1 ? outs[0] : torch::cat(outs, 0);
  }
  // Batched: every sequence against the keys up to the longest, the rest masked out.
  int64_t longest = 0;
  for (auto p : positions) longest = std::max(longest, p + 1);
  const auto dev = q.device();
  auto pos_t = torch::tensor(positions).to(dev).view({n, 1, 1, 1});
  auto k = kv_.k(layer).narrow(2, 0, longest);
  auto v = kv_.v(layer).narrow(2, 0, longest);
  bool in_order = true;  // slots 0..n-1 in order (the usual case): a view, no copy of the cache
  for (int64_t i = 0; i < n; ++i) in_order = in_order && slots[static_cast<size_t>(i)] == i;
  if (in_order) {
    k = k.narrow(0, 0, n);
    v = v.narrow(0, 0, n);
  } else {
    auto slot_t = torch::tensor(std::vector<int64_t>(slots.begin(), slots.end())).to(dev);
    k = k.index_select(0, slot_t);
    v = v.index_select(0, slot_t);
  }
  const int64_t groups = q.size(1) / k.size(1);
  if (groups > 1) {
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  auto kpos = torch::arange(longest, torch::dtype(torch::kInt64).device(dev)).view({1, 1, 1, -1});
  auto allowed = kpos.le(pos_t);
  if (window) allowed = allowed.logical_and(kpos.gt(pos_t - *window));
#if TORCH_VERSION_MAJOR >= 2
  return at::scaled_dot_product_attention(q, k, v, allowed);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  auto scores =
      torch::matmul(q.to(torch::kFloat32), k.to(torch::kFloat32).transpose(-2, -1)) * scale;
  scores = scores.masked_fill(allowed.logical_not(), -std::numeric_limits<float>::infinity());
  return torch::matmul(torch::softmax(scores, -1).to(q.scalar_type()), v);
#endif
}

torch::Tensor Engine::Decode(const std::vector<int>& slots, const std::vector<int32_t>& tokens) {
  const int64_t n = static_cast<int64_t>(slots.size());
  if (n == 0 || tokens.size() != slots.size()) throw Error("decode: one token per slot");
  torch::NoGradGuard no_grad;
  const auto& c = model_->config();
  const int64_t hq = c.num_attention_heads, hkv = c.num_key_value_heads, d = c.head_dim;
  std::vector<int64_t> positions;
  for (int s : slots) {
    const int64_t p = kv_.length(s);
    if (p >= max_len()) throw Error("decode: slot " + std::to_string(s) + " is full");
    positions.push_back(p);
  }
  const auto dev = model_->device();
  auto slot_t = torch::tensor(std::vector<int64_t>(slots.begin(), slots.end())).to(dev);
  auto pos_t = torch::tensor(positions).to(dev);
  RopeTables rope;
  if (options_.exact_attention) {
    // The model's own tables for one position (model.forward(ids, cache) computes Rope(p, 1)).
    std::vector<torch::Tensor> cos, sin;
    for (int64_t p : positions) {
      const RopeTables r = model_->Rope(p, 1);
      cos.push_back(r.cos);
      sin.push_back(r.sin);
    }
    rope = {torch::cat(cos, 0).view({n, 1, 1, d}), torch::cat(sin, 0).view({n, 1, 1, d})};
  } else {
    rope = {rope_all_.cos.index_select(0, pos_t).view({n, 1, 1, d}),
            rope_all_.sin.index_select(0, pos_t).view({n, 1, 1, d})};
  }
  auto ids = torch::tensor(std::vector<int64_t>(tokens.begin(), tokens.end())).view({n, 1});
  torch::Tensor h = model_->Embed(ids);  // [n, 1, hidden]
  for (int64_t l = 0; l < model_->num_layers(); ++l) {
    DecoderLayer& layer = model_->layer(l);
    Attention& at = *layer.self_attn;
    const torch::Tensor x = layer.input_layernorm->forward(h);
    auto q = at.q_proj->forward(x).view({n, 1, hq, d}).transpose(1, 2);
    auto k = at.k_proj->forward(x).view({n, 1, hkv, d}).transpose(1, 2);
    auto v = at.v_proj->forward(x).view({n, 1, hkv, d}).transpose(1, 2);
    q = ApplyRope(q, rope);
    k = ApplyRope(k, rope);
    using torch::indexing::Slice;
    kv_.k(l).index_put_({slot_t, Slice(), pos_t}, k.squeeze(2));
    kv_.v(l).index_put_({slot_t, Slice(), pos_t}, v.squeeze(2));
    const torch::Tensor a = Attend(l, q, slots, positions);  // [n, hq, 1, d]
    h = h + at.o_proj->forward(a.transpose(1, 2).reshape({n, 1, hq * d}));
    h = h + layer.mlp->forward(layer.post_attention_layernorm->forward(h));
  }
  for (size_t i = 0; i < slots.size(); ++i) kv_.set_length(slots[i], positions[i] + 1);
  const torch::Tensor logits = model_->Logits(model_->FinalNorm(h));  // [n, 1, vocab]
  return logits.select(1, 0).to(torch::kCPU, torch::kFloat32);
}

}  // namespace ps::serve

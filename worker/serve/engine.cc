#include "worker/serve/engine.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <limits>

#include "common/error.h"
#include "worker/models/attention.h"
#include "worker/models/rope.h"
#include "worker/serve/decode_graphs.h"
#ifdef PS_SERVE_WITH_CUDA
#include "worker/serve/decode_attention_op.h"
#include "worker/serve/decode_fused_op.h"
#endif

namespace ps::serve {

namespace {
torch::TensorOptions OptionsOf(const LlamaForCausalLM& m) {
  return torch::dtype(m.dtype()).device(m.device());
}

// The GPU kernels of the decode step (`what`) run batched steps, so never with exact attention
// (`exact_fix` says how to choose), and need a CUDA build and the model on a CUDA device
// (`instead` says which option to take otherwise).
void RequireBatchedCudaKernels(const EngineOptions& o, const LlamaForCausalLM& m,
                               const std::string& what, const std::string& exact_fix,
                               const std::string& instead) {
  if (o.exact_attention)
    throw Error("exact attention cannot be combined with " + what +
                " (batched decode steps only): " + exact_fix);
#ifdef PS_SERVE_WITH_CUDA
  if (!m.device().is_cuda())
    throw Error(what + ": needs the model on a CUDA device (it is on " + m.device().str() + "); " +
                instead + ", or serve on cuda");
#else
  (void)m;
  throw Error("this build has no CUDA kernels (LibTorch without CUDA): " + what +
              " is not available; " + instead);
#endif
}

EngineOptions Checked(EngineOptions o, const LlamaForCausalLM& m) {
  if (o.cuda_graphs) {
    if (!m.device().is_cuda())
      throw Error("CUDA graphs need the model on a CUDA device (it is on " + m.device().str() +
                  "); turn them off (--cuda-graphs off) or serve on cuda");
    o.fixed_shapes = true;
  }
  if (o.fixed_shapes && o.exact_attention)
    throw Error("fixed-shape decode (CUDA graphs) needs batched attention (--attention batched)");
  if (o.decode_kernel)
    RequireBatchedCudaKernels(o, m, "the decode attention kernel",
                              "--attention kernel or --attention exact, not both",
                              "use --attention batched or exact");
  if (o.fused_ops) {
    RequireBatchedCudaKernels(o, m, "the fused decode kernels",
                              "--fused-ops off or --attention kernel/batched",
                              "use --fused-ops off");
    // Other dtypes keep the LibTorch ops.
    o.fused_ops = m.dtype() == torch::kBFloat16 || m.dtype() == torch::kFloat16;
  }
  return o;
}

// softmax(q kᵀ/√d + mask) v with `allowed` [n, 1, 1, len] (broadcast over heads).
torch::Tensor MaskedAttention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, const torch::Tensor& allowed) {
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

// Grouped-query attention: each key/value head serves q-heads / kv-heads query heads.
void RepeatKv(torch::Tensor& k, torch::Tensor& v, int64_t q_heads) {
  const int64_t groups = q_heads / k.size(1);
  if (groups > 1) {
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
}
}  // namespace

torch::Tensor Engine::KernelAttention(int64_t layer, const torch::Tensor& q,
                                      const torch::Tensor& positions, int64_t max_keys) {
#ifdef PS_SERVE_WITH_CUDA
  if (options_.decode_kernel)
    return CudaDecodeAttention(q, kv_.k(layer), kv_.v(layer), positions, max_keys,
                               model_->config().sliding_window.value_or(0));
#else
  (void)layer, (void)q, (void)positions, (void)max_keys;
#endif
  return {};
}

Engine::Engine(std::shared_ptr<LlamaForCausalLM> model, const EngineOptions& options)
    : model_(std::move(model)),
      options_(Checked(options, *model_)),
      kv_(model_->config(), options_.max_batch, options_.max_len, OptionsOf(*model_),
          /*scratch=*/options_.fixed_shapes) {
  const auto& c = model_->config();
  if (!options_.exact_attention)
    rope_all_ = ComputeRope(RopeInvFreq(c.rope, c.head_dim), 0, max_len(), OptionsOf(*model_));
  if (options_.fixed_shapes) {
    const auto i64 = torch::dtype(torch::kInt64).device(model_->device());
    ids_ = torch::zeros({kv_.slots(), 1}, i64);
    pos_ = torch::zeros({kv_.slots()}, i64);
    rows_ = torch::zeros({kv_.slots()}, i64);
    kpos_ = torch::arange(max_len(), i64).view({1, 1, 1, -1});
  }
  if (options_.cuda_graphs) graphs_ = std::make_unique<DecodeGraphs>();
}

Engine::~Engine() = default;

int64_t Engine::RowBucket(int64_t top) const {
  int64_t b = 1;
  while (b < top + 1) b *= 2;
  return std::min(b, kv_.slots());
}

int64_t Engine::LengthBucket(int64_t longest) const {
  return std::min((longest + kLengthBucket - 1) / kLengthBucket * kLengthBucket, max_len());
}

int64_t Engine::graphs() const { return graphs_ ? graphs_->size() : 0; }

int64_t Engine::WarmUp(const std::function<void(int64_t, int64_t)>& progress) {
  if (!options_.fixed_shapes) return 0;
  std::vector<int> borrowed;
  while (const auto s = kv_.Acquire()) borrowed.push_back(*s);
  auto give_back = [&] {
    for (int s : borrowed) kv_.Release(s);
  };
  if (static_cast<int64_t>(borrowed.size()) != kv_.slots()) {
    give_back();
    throw Error("warm-up needs every KV slot free: run it before serving requests");
  }
  // The buckets as the steps meet them: the first slot of each row bucket (a step decoding it
  // alone has that many rows) and each length bucket (a step at position l - 1 reads l keys).
  std::vector<int> slots;
  for (int top = 0; top < kv_.slots(); ++top)
    if (slots.empty() || RowBucket(top) != RowBucket(slots.back())) slots.push_back(top);
  std::vector<int64_t> lengths;
  for (int64_t longest = 1; longest <= max_len(); ++longest)
    if (lengths.empty() || LengthBucket(longest) != lengths.back())
      lengths.push_back(LengthBucket(longest));
  const auto total = static_cast<int64_t>(slots.size() * lengths.size());
  int64_t done = 0;
  try {
    for (const int slot : slots)
      for (const int64_t l : lengths) {
        // The slot alone at position l - 1. Its logits are dropped; the keys it reads and writes
        // are the slot's, which the next request to own it overwrites before it reads them.
        kv_.set_length(slot, l - 1);
        (void)Decode({slot}, {0});
        kv_.set_length(slot, 0);
        ++done;
        if (progress) progress(done, total);
      }
  } catch (...) {
    give_back();
    throw;
  }
  give_back();
  return done;
}

torch::Tensor Engine::Prefill(int slot, const std::vector<int32_t>& ids,
                              torch::Tensor* all_logits) {
  if (ids.empty() || static_cast<int64_t>(ids.size()) > max_len())
    throw Error("prefill: " + std::to_string(ids.size()) + " tokens do not fit (1.." +
                std::to_string(max_len()) + ")");
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
  if (all_logits) *all_logits = logits[0];
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
    const torch::Tensor out = KernelAttention(layer, q, pos_t.view({n}), longest);
    if (out.defined()) return out;
    k = k.narrow(0, 0, n);
    v = v.narrow(0, 0, n);
  } else {
    auto slot_t = torch::tensor(std::vector<int64_t>(slots.begin(), slots.end())).to(dev);
    k = k.index_select(0, slot_t);
    v = v.index_select(0, slot_t);
  }
  RepeatKv(k, v, q.size(1));
  auto kpos = torch::arange(longest, torch::dtype(torch::kInt64).device(dev)).view({1, 1, 1, -1});
  auto allowed = kpos.le(pos_t);
  if (window) allowed = allowed.logical_and(kpos.gt(pos_t - *window));
  return MaskedAttention(q, k, v, allowed);
}

torch::Tensor Engine::Decode(const std::vector<int>& slots, const std::vector<int32_t>& tokens) {
  const int64_t n = static_cast<int64_t>(slots.size());
  if (n == 0 || tokens.size() != slots.size()) throw Error("decode: one token per slot");
  torch::NoGradGuard no_grad;
  const int64_t d = model_->config().head_dim;
  std::vector<int64_t> positions;
  std::vector<bool> seen(static_cast<size_t>(kv_.slots()), false);
  for (int s : slots) {
    if (s < 0 || s >= kv_.slots() || seen[static_cast<size_t>(s)])
      throw Error("decode: slot " + std::to_string(s) + " is out of range or repeated");
    seen[static_cast<size_t>(s)] = true;
    const int64_t p = kv_.length(s);
    if (p >= max_len()) throw Error("decode: slot " + std::to_string(s) + " is full");
    positions.push_back(p);
  }
  if (options_.fixed_shapes) return DecodeFixed(slots, tokens);
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
  const torch::Tensor logits =
      Layers(ids, rope, slot_t, pos_t,
             [&](int64_t l, const torch::Tensor& q) { return Attend(l, q, slots, positions); });
  for (size_t i = 0; i < slots.size(); ++i) kv_.set_length(slots[i], positions[i] + 1);
  return logits;
}

torch::Tensor Engine::Layers(
    const torch::Tensor& ids, const RopeTables& rope, const torch::Tensor& rows,
    const torch::Tensor& pos,
    const std::function<torch::Tensor(int64_t, const torch::Tensor&)>& attend) {
  if (options_.fused_ops) return FusedLayers(ids, rows, pos, attend);
  const auto& c = model_->config();
  const int64_t n = ids.size(0), hq = c.num_attention_heads, hkv = c.num_key_value_heads,
                d = c.head_dim;
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
    kv_.k(l).index_put_({rows, Slice(), pos}, k.squeeze(2));
    kv_.v(l).index_put_({rows, Slice(), pos}, v.squeeze(2));
    const torch::Tensor a = attend(l, q);  // [n, hq, 1, d]
    h = h + at.o_proj->forward(a.transpose(1, 2).reshape({n, 1, hq * d}));
    h = h + layer.mlp->forward(layer.post_attention_layernorm->forward(h));
  }
  return model_->Logits(model_->FinalNorm(h)).select(1, 0);  // [n, vocab]
}

torch::Tensor Engine::FusedLayers(
    const torch::Tensor& ids, const torch::Tensor& rows, const torch::Tensor& pos,
    const std::function<torch::Tensor(int64_t, const torch::Tensor&)>& attend) {
#ifdef PS_SERVE_WITH_CUDA
  const int64_t n = ids.size(0),
                width = model_->config().num_attention_heads * model_->config().head_dim;
  const int64_t layers = model_->num_layers();
  // h is the residual stream, updated in place by each add + norm; x the normed input of the
  // next projection. Every residual add is followed by a norm (the last by the final norm).
  torch::Tensor h = model_->Embed(ids).contiguous();  // [n, 1, hidden]
  const RMSNorm& first = *model_->layer(0).input_layernorm;
  torch::Tensor x = FusedAddRmsNorm(h, {}, first.weight, first.eps()).second;
  for (int64_t l = 0; l < layers; ++l) {
    DecoderLayer& layer = model_->layer(l);
    Attention& at = *layer.self_attn;
    const torch::Tensor q =
        FusedRopeAndCache(at.q_proj->forward(x), at.k_proj->forward(x), at.v_proj->forward(x),
                          rope_all_.cos, rope_all_.sin, pos, rows, kv_.k(l), kv_.v(l));
    const torch::Tensor a = attend(l, q);  // [n, hq, 1, d]
    const torch::Tensor o = at.o_proj->forward(a.transpose(1, 2).reshape({n, 1, width}));
    const RMSNorm& post = *layer.post_attention_layernorm;
    x = FusedAddRmsNorm(h, o.contiguous(), post.weight, post.eps()).second;
    Mlp& mlp = *layer.mlp;
    const torch::Tensor m = mlp.down_proj->forward(
        FusedSiluMul(mlp.gate_proj->forward(x).contiguous(), mlp.up_proj->forward(x).contiguous()));
    const RMSNorm& next =
        l + 1 < layers ? *model_->layer(l + 1).input_layernorm : *model_->model->norm;
    x = FusedAddRmsNorm(h, m.contiguous(), next.weight, next.eps()).second;
  }
  return model_->Logits(x).select(1, 0);  // [n, vocab]
#else
  (void)ids, (void)rows, (void)pos, (void)attend;
  throw Error("the fused decode kernels need a CUDA build");
#endif
}

torch::Tensor Engine::DecodeFixed(const std::vector<int>& slots,
                                  const std::vector<int32_t>& tokens) {
  const int64_t scratch = kv_.slots();  // the pool's scratch slot
  int64_t top = 0, longest = 1;
  for (int s : slots) top = std::max<int64_t>(top, s);
  const int64_t b = RowBucket(top);
  // Padding rows: token 0 at position 0 of the scratch slot (their logits are dropped).
  std::vector<int64_t> ids(static_cast<size_t>(b), 0), pos(static_cast<size_t>(b), 0),
      rows(static_cast<size_t>(b), scratch);
  for (size_t i = 0; i < slots.size(); ++i) {
    const auto s = static_cast<size_t>(slots[i]);
    ids[s] = tokens[i];
    pos[s] = kv_.length(slots[i]);
    rows[s] = slots[i];
    longest = std::max(longest, pos[s] + 1);
  }
  const int64_t len = LengthBucket(longest);
  torch::NoGradGuard no_grad;
  ids_.narrow(0, 0, b).copy_(torch::tensor(ids).view({b, 1}));
  pos_.narrow(0, 0, b).copy_(torch::tensor(pos));
  rows_.narrow(0, 0, b).copy_(torch::tensor(rows));
  auto step = [this, b, len] { return FixedStep(b, len); };
  const torch::Tensor logits = graphs_ ? graphs_->Run(b, len, step) : step();
  for (int s : slots) kv_.set_length(s, kv_.length(s) + 1);
  const auto picked =
      torch::tensor(std::vector<int64_t>(slots.begin(), slots.end())).to(logits.device());
  return logits.index_select(0, picked);
}

torch::Tensor Engine::FixedStep(int64_t b, int64_t len) {
  const int64_t d = model_->config().head_dim;
  const auto window = model_->config().sliding_window;
  const torch::Tensor pos = pos_.narrow(0, 0, b);
  const RopeTables rope{rope_all_.cos.index_select(0, pos).view({b, 1, 1, d}),
                        rope_all_.sin.index_select(0, pos).view({b, 1, 1, d})};
  const torch::Tensor pos4 = pos.view({b, 1, 1, 1}), kpos = kpos_.narrow(3, 0, len);
  torch::Tensor allowed = kpos.le(pos4);
  if (window) allowed = allowed.logical_and(kpos.gt(pos4 - *window));
  return Layers(ids_.narrow(0, 0, b), rope, rows_.narrow(0, 0, b), pos,
                [&](int64_t l, const torch::Tensor& q) {
                  const torch::Tensor out = KernelAttention(l, q, pos, len);
                  if (out.defined()) return out;
                  // Row i reads slot i's keys: views of the pool, no copy.
                  torch::Tensor k = kv_.k(l).narrow(0, 0, b).narrow(2, 0, len);
                  torch::Tensor v = kv_.v(l).narrow(0, 0, b).narrow(2, 0, len);
                  RepeatKv(k, v, q.size(1));
                  return MaskedAttention(q, k, v, allowed);
                });
}

}  // namespace ps::serve

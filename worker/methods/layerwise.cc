#include "worker/methods/layerwise.h"

#include <memory>
#include <optional>

#include "common/error.h"
#include "worker/methods/calib_stats.h"
#include "worker/methods/mask_lsq.h"
#include "worker/methods/nm_mask.h"
#include "worker/methods/one_shot.h"

namespace ps {

OneShotMethod ParseOneShotMethod(const std::string& name) {
  if (name == "magnitude") return OneShotMethod::kMagnitude;
  if (name == "wanda") return OneShotMethod::kWanda;
  if (name == "sparsegpt") return OneShotMethod::kSparseGpt;
  throw Error("method.name: '" + name + "' is not a one-shot method (magnitude|wanda|sparsegpt)");
}

namespace {

// Thrown from an input hook once a statistics pass has seen every input it needs, so the rest of
// the layer is not computed (the references' Catcher trick).
struct StopForward {};

// The linears of one decoder layer by short name, in forward order.
struct LayerLinears {
  std::vector<std::pair<std::string, std::shared_ptr<Linear>>> all;
  std::shared_ptr<Linear> Get(const std::string& short_name) const {
    for (const auto& [n, l] : all) {
      if (n == short_name) return l;
    }
    throw Error("layer-wise pruning: no linear '" + short_name + "'");
  }
};

LayerLinears LinearsOf(DecoderLayer& layer) {
  auto& a = *layer.self_attn;
  auto& m = *layer.mlp;
  return {{{"q", a.q_proj},
           {"k", a.k_proj},
           {"v", a.v_proj},
           {"o", a.o_proj},
           {"gate", m.gate_proj},
           {"up", m.up_proj},
           {"down", m.down_proj}}};
}

// Linears that see the same input tensor share statistics; the key's first linear in forward
// order is the one hooked. Keys are ordered as the forward reaches them.
int InputKey(const std::string& short_name) {
  if (short_name == "q" || short_name == "k" || short_name == "v") return 0;
  if (short_name == "o") return 1;
  if (short_name == "gate" || short_name == "up") return 2;
  return 3;  // down
}
const char* kHooked[4] = {"q", "o", "gate", "down"};

std::vector<std::vector<std::string>> Rounds(const LayerwiseOptions& o) {
  if (o.method == OneShotMethod::kSparseGpt && o.true_sequential) {
    return {{"k", "v", "q"}, {"o"}, {"up", "gate"}, {"down"}};
  }
  return {{"q", "k", "v", "o", "gate", "up", "down"}};
}

// Clears the input hooks of a layer's linears however the scope is left.
struct HookGuard {
  const LayerLinears& lin;
  ~HookGuard() {
    for (const auto& [n, l] : lin.all) l->set_input_hook(nullptr);
  }
};

// Statistics of one input key: column norms (Wanda) or the Hessian (SparseGPT).
struct KeyStats {
  std::unique_ptr<ColumnNormStats> norms;
  std::unique_ptr<HessianStats> hessian;
  void Add(const torch::Tensor& x) {
    if (norms) norms->Add(x);
    if (hessian) hessian->Add(x);
  }
  void Reduce(const std::function<void(torch::Tensor&)>& all_reduce) {
    if (!all_reduce) return;
    if (norms) {
      all_reduce(norms->sum_sq());
      all_reduce(norms->count());
    }
    if (hessian) {
      all_reduce(hessian->xtx());
      all_reduce(hessian->count());
    }
  }
  int64_t tokens() const { return norms ? norms->tokens() : hessian->tokens(); }
};

// The owner's solve goes to every rank: weight (in the model's dtype, as ReplaceWeight stores it),
// mask and error. Every rank then holds bit-identical weights.
void ShareSolve(SparseGptResult& r, const Linear& lin, int owner, const LayerwiseOptions& o) {
  const bool mine = owner == o.rank;
  const torch::Tensor& w0 = lin.weight;
  torch::Tensor w = mine ? r.weight.to(w0.options()).contiguous() : torch::empty_like(w0.detach());
  torch::Tensor m = mine ? r.mask.to(w.device(), torch::kUInt8).contiguous()
                         : torch::empty(w0.sizes(), w0.options().dtype(torch::kUInt8));
  torch::Tensor e = torch::full({1}, r.loss, torch::dtype(torch::kFloat64).device(w0.device()));
  o.broadcast(w, owner);
  o.broadcast(m, owner);
  o.broadcast(e, owner);
  r.weight = w;
  r.mask = m.to(torch::kBool);
  r.loss = e.item<double>();
}

}  // namespace

LayerwiseResult PruneLayerwise(LlamaForCausalLM& model,
                               const std::vector<std::vector<int32_t>>& samples,
                               const LayerwiseOptions& options) {
  torch::NoGradGuard no_grad;
  const NMPattern p = options.pattern;
  LayerwiseResult result;
  std::map<std::string, torch::Tensor> originals;  // for restore_dense_weights

  RowShardedTargets* const rows = options.rows;
  if (rows && !options.all_reduce_sum)
    throw Error("layer-wise pruning: row-sharded targets need all_reduce_sum");
  // What the pruning reads and replaces: the whole weight, or this rank's rows of it.
  auto weight_of = [&](Linear& lin) -> torch::Tensor {
    return rows ? rows->Local(lin).detach() : lin.weight.detach();
  };
  // `mask` and `weight` are of weight_of(lin)'s rows; the full mask goes into the result.
  auto prune_linear = [&](Linear& lin, const torch::Tensor& mask, const torch::Tensor& weight) {
    if (options.restore_dense_weights) originals[lin.path()] = weight_of(lin).cpu().clone();
    if (!rows) {
      lin.ReplaceWeight(weight);
      result.masks[lin.path()] = mask.to(torch::kCPU);
      return;
    }
    torch::Tensor local = weight_of(lin);
    local.copy_(weight);
    result.masks[lin.path()] =
        rows->Gather(lin, mask.to(local.device(), torch::kUInt8).contiguous())
            .to(torch::kCPU)
            .to(torch::kBool);
  };

  if (options.fixed_masks && options.method != OneShotMethod::kSparseGpt)
    throw Error("layer-wise pruning: fixed masks are for the SparseGPT update only");
  const int64_t layers = model.num_layers();
  int64_t solve_index = 0;  // SparseGPT solves so far (spread over ranks)
  if (options.method == OneShotMethod::kMagnitude) {
    for (int64_t i = 0; i < layers; ++i) {
      for (const auto& [n, l] : LinearsOf(model.layer(i)).all) {
        const torch::Tensor w = weight_of(*l);
        auto mask = MagnitudeMask(w, p);
        prune_linear(*l, mask, ApplyMask(w, mask));
      }
      if (options.on_layer_done) options.on_layer_done(i, layers);
    }
  } else {
    // Embed every sample (hidden states stay in the model's dtype and device).
    const int64_t vocab = model.config().vocab_size;
    std::vector<torch::Tensor> hidden;
    std::map<int64_t, RopeTables> rope;
    for (size_t j = 0; j < samples.size(); ++j) {
      const auto& s = samples[j];
      if (s.empty()) throw Error("calibration sample " + std::to_string(j) + " is empty");
      for (int32_t id : s) {
        if (id < 0 || id >= vocab) {
          throw Error("calibration sample " + std::to_string(j) + ": token id " +
                      std::to_string(id) + " outside the vocabulary (" + std::to_string(vocab) +
                      ")");
        }
      }
      auto ids = torch::tensor(s, torch::kInt64).view({1, -1});
      hidden.push_back(model.Embed(ids));
      const int64_t t = ids.size(1);
      if (!rope.count(t)) rope.emplace(t, model.Rope(0, t));
    }
    auto run_layer = [&](DecoderLayer& layer, const torch::Tensor& h) {
      return layer.forward(h, rope.at(h.size(1)));
    };

    for (int64_t i = 0; i < layers; ++i) {
      DecoderLayer& layer = model.layer(i);
      const LayerLinears lin = LinearsOf(layer);
      // Row shards: the layer's full weights for its forwards (freed at the end of the layer).
      if (rows)
        for (const auto& [n, l] : lin.all) rows->Hold(*l);
      for (const auto& round : Rounds(options)) {
        // Statistics for the input keys this round needs.
        std::map<int, KeyStats> stats;
        for (const auto& n : round) {
          const int key = InputKey(n);
          if (stats.count(key)) continue;
          const int64_t in = lin.Get(n)->in_features();
          KeyStats ks;
          const auto dev = lin.Get(n)->weight.device();
          if (options.method == OneShotMethod::kWanda) {
            ks.norms = std::make_unique<ColumnNormStats>(in, dev, options.stats_dtype);
          } else {
            ks.hessian = std::make_unique<HessianStats>(in, dev, options.stats_dtype);
          }
          stats.emplace(key, std::move(ks));
        }
        const int last_key = stats.rbegin()->first;
        {
          HookGuard guard{lin};
          for (auto& [key, ks] : stats) {
            KeyStats* target = &ks;
            const bool last = key == last_key;
            lin.Get(kHooked[key])
                ->set_input_hook([target, last](const std::string&, const torch::Tensor& x) {
                  target->Add(x);
                  if (last) throw StopForward{};
                });
          }
          for (const auto& h : hidden) {
            try {
              run_layer(layer, h);
            } catch (const StopForward&) {
            }
          }
        }
        for (auto& [key, ks] : stats) {
          ks.Reduce(options.all_reduce_sum);
          result.calibration_tokens = ks.tokens();
          if (result.calibration_tokens == 0) {
            throw Error("layer-wise pruning: no calibration tokens (every rank got no samples)");
          }
        }
        for (const auto& n : round) {
          auto l = lin.Get(n);
          const KeyStats& ks = stats.at(InputKey(n));
          const torch::Tensor w = weight_of(*l);
          if (options.method == OneShotMethod::kWanda) {
            auto mask = WandaMask(w, ks.norms->Norms(), p);
            prune_linear(*l, mask, ApplyMask(w, mask));
          } else {
            const bool spread = options.broadcast && options.ranks > 1 && !rows;
            const int owner =
                spread ? static_cast<int>(solve_index++ % options.ranks) : options.rank;
            SparseGptResult r;
            if (owner == options.rank) {
              if (options.fixed_masks) {
                auto it = options.fixed_masks->find(l->path());
                if (it == options.fixed_masks->end())
                  throw Error("reconstruction: no mask for " + l->path());
                const auto solve =
                    options.fixed_masks_exact ? MaskedLeastSquares : SparseGptReconstruct;
                const torch::Tensor fixed =
                    rows ? it->second.narrow(0, rows->FirstRow(*l), w.size(0)) : it->second;
                r = solve(w, ks.hessian->Hessian(), fixed.to(w.device()), p, options.sparsegpt,
                          l->path());
              } else {
                r = SparseGptPrune(w, ks.hessian->Hessian(), p, options.sparsegpt, l->path());
              }
            }
            if (spread) ShareSolve(r, *l, owner, options);
            if (rows) {  // each rank's loss is of its rows; the layer's is their sum
              torch::Tensor e = torch::full({1}, r.loss, w.options().dtype(torch::kFloat64));
              options.all_reduce_sum(e);
              r.loss = e.item<double>();
            }
            result.sparsegpt_error[l->path()] = r.loss;
            prune_linear(*l, r.mask, r.weight);
          }
          if (rows) {  // later rounds and the output pass see the pruned weight
            rows->Release(*l);
            rows->Hold(*l);
          }
        }
      }
      // The pruned layer's outputs feed the next layer.
      for (auto& h : hidden) h = run_layer(layer, h);
      if (rows)
        for (const auto& [n, l] : lin.all) rows->Release(*l);
      if (options.on_layer_done) options.on_layer_done(i, layers);
    }
  }
  if (options.restore_dense_weights) {
    for (const auto& l : model.TargetLinears()) {
      if (rows) {
        weight_of(*l).copy_(originals.at(l->path()));
      } else {
        l->ReplaceWeight(originals.at(l->path()));
      }
    }
  }
  return result;
}

}  // namespace ps

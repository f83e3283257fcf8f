#include "worker/methods/maskllm.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <cmath>

#include "common/error.h"
#include "worker/methods/nm_mask.h"
#include "worker/methods/seeded_random.h"

namespace ps {

torch::Tensor CandidateMasks(NMPattern p) {
  if (p.n < 1 || p.n >= p.m || p.m > 8) {
    throw Error("MaskLLM: pattern " + p.ToString() + " has too many candidate masks (M <= 8)");
  }
  std::vector<std::vector<float>> rows;
  for (int bits = 0; bits < (1 << p.m); ++bits) {
    if (__builtin_popcount(static_cast<unsigned>(bits)) != p.n) continue;
    std::vector<float> r(static_cast<size_t>(p.m));
    for (int k = 0; k < p.m; ++k) r[size_t(k)] = (bits >> k) & 1 ? 1.f : 0.f;
    rows.push_back(r);
  }
  // Lexicographic order of the kept index sets: compare the rows as words, first index first.
  std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a > b; });
  auto out = torch::empty({static_cast<int64_t>(rows.size()), p.m}, torch::kFloat32);
  for (size_t i = 0; i < rows.size(); ++i) {
    for (int k = 0; k < p.m; ++k) out[int64_t(i)][k] = rows[i][size_t(k)];
  }
  return out;
}

torch::Tensor InitMaskLogits(int64_t groups, const torch::Tensor& prior, NMPattern p,
                             double init_std, double alpha, uint64_t seed,
                             const torch::Device& device) {
  auto cand = CandidateMasks(p).to(device);
  auto opts = torch::TensorOptions(device).dtype(torch::kFloat32);
  auto logits = SeededNormal({groups, cand.size(0)}, seed, opts) * init_std;
  if (prior.defined() && alpha != 0) {
    if (prior.numel() != groups * p.m) {
      throw Error("MaskLLM: prior mask has " + std::to_string(prior.numel()) +
                  " entries, expected " + std::to_string(groups * p.m));
    }
    auto overlap = prior.to(device, torch::kFloat32).reshape({groups, p.m}).mm(cand.t());
    const double centre = double(p.n) * double(p.n) / double(p.m);
    // σ(π) as the official code takes it: the std of the random logits, before any clamping.
    const double sigma = logits.std().item<double>();
    // The prior candidate's overlap is N, every other's at most N−1: the prior term gives it a
    // lead of at least α·σ. Clamping the random part to ±α·σ/4 keeps a margin of α·σ/2 after the
    // noise, so the initial argmax IS the prior mask in every group (with the paper's unclamped
    // N(0, σ) noise and α = 3, some 5% of groups start on a rival; a short run would keep those
    // noise-picked masks).
    const double bound = alpha * sigma / 4.0;
    logits.clamp_(-bound, bound);
    logits += (overlap - centre) * (sigma * alpha);
  }
  return logits;
}

torch::Tensor GumbelSoftMask(const torch::Tensor& logits, const torch::Tensor& uniform,
                             const torch::Tensor& candidates, double kappa, double tau, bool hard) {
  auto u = uniform.clamp(1e-20, 1.0 - 1e-7);
  auto g = -torch::log(-torch::log(u));
  auto y = torch::softmax((logits * kappa + g) / tau, 1);
  if (hard) {
    auto one_hot = torch::zeros_like(y).scatter_(1, y.argmax(1, true), 1.0);
    y = one_hot - y.detach() + y;
  }
  return y.mm(candidates);
}

torch::Tensor ArgmaxMask(const torch::Tensor& logits, const torch::Tensor& candidates) {
  return candidates.index_select(0, logits.argmax(1)).to(torch::kBool);
}

MaskLlm::MaskLlm(std::vector<std::shared_ptr<Linear>> targets, const MaskLlmOptions& options,
                 const std::map<std::string, torch::Tensor>& priors)
    : options_(options),
      tau_(options.tau_start),
      kappa_(options.kappa_start),
      reg_coef_(options.sparse_reg) {
  if (!(options.tau_start > 0 && options.tau_end > 0)) throw Error("method.tau: must be > 0");
  if (!(options.kappa_start > 0 && options.kappa_end > 0)) throw Error("method.kappa: must be > 0");
  if (!(options.prior_alpha >= 0)) throw Error("method.prior_alpha: must be >= 0");
  if (!(options.init_std > 0)) throw Error("MaskLLM: init_std must be > 0");
  if (!(options.sparse_reg >= 0)) throw Error("method.sparse_reg: must be >= 0");
  if (targets.empty()) throw Error("MaskLLM: no target linears");
  for (const auto& [name, m] : priors) {
    bool known = false;
    for (const auto& t : targets) known = known || t->path() == name;
    if (!known) throw Error("MaskLLM: prior mask for unknown linear '" + name + "'");
  }
  candidates_ = CandidateMasks(options.pattern).to(targets[0]->weight.device());
  for (size_t i = 0; i < targets.size(); ++i) {
    const auto& lin = targets[i];
    CheckNMShape(lin->weight, options.pattern, lin->path());
    auto it = priors.find(lin->path());
    torch::Tensor prior;
    if (it != priors.end()) {
      prior = it->second;
      if (prior.sizes() != lin->weight.sizes()) {
        throw Error("MaskLLM: prior mask for " + lin->path() + " has shape " +
                    c10::str(prior.sizes()) + ", weight is " + c10::str(lin->weight.sizes()));
      }
    }
    Slot s;
    s.linear = lin;
    s.logits =
        InitMaskLogits(lin->weight.numel() / options.pattern.m, prior, options.pattern,
                       options.init_std, options.prior_alpha,
                       MixSeed(options.seed, 0x4d61736b4c4c4dULL, i, 0), lin->weight.device())
            .set_requires_grad(true);
    slots_.push_back(std::move(s));
  }
}

MaskLlm::~MaskLlm() { Uninstall(); }

std::vector<std::pair<std::string, torch::Tensor>> MaskLlm::Parameters() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& s : slots_) out.emplace_back(s.linear->path() + ".mask_logits", s.logits);
  return out;
}

torch::Tensor MaskLlm::Sample(Slot& s, size_t index) {
  const uint64_t seed =
      MixSeed(options_.seed, static_cast<uint64_t>(step_), index, static_cast<uint64_t>(++s.calls));
  auto u = SeededUniform(s.logits.sizes(), seed, s.logits.options().requires_grad(false));
  auto soft = GumbelSoftMask(s.logits, u, candidates_, kappa_, tau_, options_.hard)
                  .view(s.linear->weight.sizes());
  s.last_soft = soft;
  return soft;
}

void MaskLlm::Install() {
  if (installed_) return;
  for (size_t i = 0; i < slots_.size(); ++i) {
    auto& s = slots_[i];
    s.weight_required_grad = s.linear->weight.requires_grad();
    s.linear->weight.set_requires_grad(false);
    s.linear->set_weight_transform(
        [this, i](const torch::Tensor& w) { return w * Sample(slots_[i], i).to(w.scalar_type()); });
  }
  installed_ = true;
}

void MaskLlm::Uninstall() {
  if (!installed_) return;
  for (auto& s : slots_) {
    s.linear->set_weight_transform(nullptr);
    s.linear->weight.set_requires_grad(s.weight_required_grad);
    s.last_soft = torch::Tensor();
  }
  installed_ = false;
}

void MaskLlm::SetProgress(int64_t step, int64_t total_steps) {
  if (total_steps < 1 || step < 0) {
    throw Error("MaskLLM: bad progress " + std::to_string(step) + "/" +
                std::to_string(total_steps));
  }
  const double f = std::min(1.0, double(step) / double(total_steps));
  tau_ = std::lerp(options_.tau_start, options_.tau_end, f);  // exact at both ends
  kappa_ = std::lerp(options_.kappa_start, options_.kappa_end, f);
  reg_coef_ = options_.sparse_reg * (1.0 - f);
  step_ = step;
  for (auto& s : slots_) s.calls = 0;
}

torch::Tensor MaskLlm::Regularizer() const {
  torch::Tensor total;
  for (const auto& s : slots_) {
    if (!s.last_soft.defined()) {
      throw Error("MaskLLM: regulariser asked before " + s.linear->path() + " ran forward");
    }
    auto t = (s.linear->weight.detach().to(torch::kFloat32) * s.last_soft).square().sum();
    total = total.defined() ? total + t : t;
  }
  return total * (-reg_coef_);
}

torch::Tensor MaskLlm::HardMask(size_t i) const {
  torch::NoGradGuard no_grad;
  return ArgmaxMask(slots_.at(i).logits, candidates_).view(slots_[i].linear->weight.sizes());
}

torch::Tensor MaskLlm::HardMaskOf(const torch::Tensor& logits) const {
  torch::NoGradGuard no_grad;
  return ArgmaxMask(logits, candidates_);
}

std::map<std::string, torch::Tensor> MaskLlm::FinalMasks() const {
  std::map<std::string, torch::Tensor> out;
  for (size_t i = 0; i < slots_.size(); ++i) out[name(i)] = HardMask(i);
  return out;
}

double MaskLlm::MeanMaxProbability() const {
  torch::NoGradGuard no_grad;
  double sum = 0;
  int64_t groups = 0;
  for (const auto& s : slots_) {
    sum += torch::softmax(s.logits * kappa_, 1).amax(1).sum().item<double>();
    groups += s.logits.size(0);
  }
  return groups ? sum / double(groups) : 0.0;
}

void MaskLlmHooks::Count(const OwnedTensor& t, MaskCounts& c) {
  torch::Tensor mask = m_.HardMaskOf(t.master);
  c.groups += mask.numel() / p_.m;
  c.nm += mask.numel() / p_.m;
  auto [it, first] = last_.try_emplace(t.index, mask);
  if (!first) {
    c.flips += CountMaskFlips(mask, it->second) / 2;
    it->second = mask;
  }
}

}  // namespace ps

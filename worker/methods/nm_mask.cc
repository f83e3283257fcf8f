#include "worker/methods/nm_mask.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "common/error.h"

namespace ps {

void CheckNMShape(const torch::Tensor& t, NMPattern p, const std::string& what) {
  if (p.n < 1 || p.m > 16 || p.n >= p.m) {
    throw Error(what + ": N:M pattern " + p.ToString() + " is not 1 <= N < M <= 16");
  }
  if (!t.defined() || t.dim() != 2) {
    throw Error(what + ": expected a 2-D [out, in] tensor, got " +
                (t.defined() ? c10::str(t.sizes()) : std::string("an undefined tensor")));
  }
  if (t.size(1) % p.m != 0) {
    throw Error(what + ": input dimension " + std::to_string(t.size(1)) +
                " is not a multiple of M=" + std::to_string(p.m) + " (pattern " + p.ToString() +
                ")");
  }
}

torch::Tensor TopNMask(const torch::Tensor& score, NMPattern p, const std::string& what) {
  CheckNMShape(score, p, what);
  if (!score.is_floating_point()) throw Error(what + ": scores must be floating point");
  if (torch::isnan(score).any().item<bool>()) {
    throw Error(what + ": score contains NaN (a NaN weight or activation statistic?)");
  }
  return TopNMaskUnchecked(score, p);
}

torch::Tensor TopNMaskUnchecked(const torch::Tensor& score, NMPattern p) {
  // rank_j = #{k : s_k > s_j} + #{k < j : s_k == s_j}; keep rank_j < N. Computed over chunks of
  // groups so the [groups, M, M] comparison stays small.
  auto s = score.abs().reshape({-1, p.m});
  auto out = torch::empty(s.sizes(), s.options().dtype(torch::kBool));
  auto lower = torch::ones({p.m, p.m}, s.options().dtype(torch::kBool)).tril(-1);  // [j, k]: k < j
  const int64_t groups = s.size(0), chunk = int64_t{1} << 20;
  for (int64_t g0 = 0; g0 < groups; g0 += chunk) {
    auto sc = s.slice(0, g0, std::min(groups, g0 + chunk));
    auto sj = sc.unsqueeze(2), sk = sc.unsqueeze(1);  // [g, j, 1], [g, 1, k]
    auto beats = (sk > sj).logical_or((sk == sj).logical_and(lower));
    out.slice(0, g0, g0 + sc.size(0)).copy_(beats.sum(2) < p.n);
  }
  return out.view(score.sizes());
}

torch::Tensor TopNMaskReference(const torch::Tensor& score, NMPattern p) {
  CheckNMShape(score, p, "score");
  auto s = score.to(torch::kCPU, torch::kFloat64).contiguous();
  const double* v = s.data_ptr<double>();
  for (int64_t i = 0; i < s.numel(); ++i) {
    if (std::isnan(v[i])) throw Error("score: contains NaN");
  }
  auto mask = torch::zeros(s.sizes(), torch::kBool);
  bool* mk = mask.data_ptr<bool>();
  std::vector<int> idx(static_cast<size_t>(p.m));
  for (int64_t g = 0; g < s.numel() / p.m; ++g) {
    const double* grp = v + g * p.m;
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](int a, int b) { return std::fabs(grp[a]) > std::fabs(grp[b]); });
    for (int r = 0; r < p.n; ++r) mk[g * p.m + idx[static_cast<size_t>(r)]] = true;
  }
  return mask;
}

namespace {
torch::Tensor NonZerosPerGroup(const torch::Tensor& t, NMPattern p) {
  CheckNMShape(t, p, "weight");
  auto nz = t.scalar_type() == torch::kBool ? t : t.ne(0);
  return nz.reshape({-1, p.m}).sum(1);
}
}  // namespace

GroupStats ComputeGroupStats(const torch::Tensor& weight_or_mask, NMPattern p) {
  auto nnz = NonZerosPerGroup(weight_or_mask, p);
  GroupStats st;
  st.groups = nnz.numel();
  st.at_most_n = nnz.le(p.n).sum().item<int64_t>();
  st.dense = nnz.eq(p.m).sum().item<int64_t>();
  st.between = st.groups - st.at_most_n - st.dense;
  return st;
}

int64_t CountNMViolations(const torch::Tensor& weight_or_mask, NMPattern p) {
  return NonZerosPerGroup(weight_or_mask, p).gt(p.n).sum().item<int64_t>();
}

int64_t CountMaskFlips(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes()) {
    throw Error("mask flips: shapes differ, " + c10::str(a.sizes()) + " vs " + c10::str(b.sizes()));
  }
  return a.to(torch::kBool).ne(b.to(a.device(), torch::kBool)).sum().item<int64_t>();
}

int64_t CountPackedMaskFlips(const torch::Tensor& a, const torch::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != torch::kUInt8 ||
      b.scalar_type() != torch::kUInt8) {
    throw Error("mask flips: packed masks must be uint8 of one size, got " + c10::str(a.sizes()) +
                " and " + c10::str(b.sizes()));
  }
  // Popcount of the differing bits through a 256-entry table.
  std::vector<int32_t> bits(256);
  for (int v = 0; v < 256; ++v) bits[static_cast<size_t>(v)] = __builtin_popcount(v);
  const torch::Tensor table = torch::tensor(bits, torch::dtype(torch::kInt32)).to(a.device());
  const torch::Tensor diff = a.bitwise_xor(b.to(a.device())).to(torch::kInt64);
  return table.index_select(0, diff).sum().item<int64_t>();
}

torch::Tensor NonZeroMask(const torch::Tensor& weight) { return weight.ne(0); }

torch::Tensor ApplyMask(const torch::Tensor& weight, const torch::Tensor& mask) {
  if (weight.sizes() != mask.sizes()) {
    throw Error("apply mask: weight " + c10::str(weight.sizes()) + " and mask " +
                c10::str(mask.sizes()) + " differ in shape");
  }
  return torch::where(mask.to(weight.device(), torch::kBool), weight, torch::zeros_like(weight));
}

torch::Tensor PackMaskBits(const torch::Tensor& mask) {
  auto flat = mask.to(torch::kBool).contiguous().view(-1);
  const int64_t n = flat.numel(), bytes = (n + 7) / 8;
  auto bits = torch::zeros({bytes * 8}, flat.options().dtype(torch::kUInt8));
  bits.slice(0, 0, n).copy_(flat);
  auto weights = torch::tensor({1, 2, 4, 8, 16, 32, 64, 128}, torch::kInt32).to(flat.device());
  return (bits.view({bytes, 8}).to(torch::kInt32) * weights).sum(1).to(torch::kUInt8);
}

torch::Tensor UnpackMaskBits(const torch::Tensor& packed, torch::IntArrayRef shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (packed.scalar_type() != torch::kUInt8 || packed.dim() != 1 || packed.numel() != (n + 7) / 8) {
    throw Error("unpack mask: expected " + std::to_string((n + 7) / 8) + " uint8 bytes for shape " +
                c10::str(shape) + ", got " + c10::str(packed.sizes()) + " of " +
                std::string(c10::toString(packed.scalar_type())));
  }
  auto weights = torch::tensor({1, 2, 4, 8, 16, 32, 64, 128}, torch::kInt32);
  auto bits =
      packed.to(torch::kCPU).to(torch::kInt32).unsqueeze(1).bitwise_and(weights).ne(0).view(-1);
  if (bits.slice(0, n).any().item<bool>()) throw Error("unpack mask: padding bits are set");
  return bits.slice(0, 0, n).to(torch::kBool).view(shape).clone();
}

}  // namespace ps

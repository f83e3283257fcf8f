// N:M masks: choosing them from scores, checking them, measuring them, packing them.
//
// Groups are M consecutive weights along the input dimension of a weight [out, in] (row-major
// view(-1, M)), the layout sparse tensor cores use for y = x Wᵀ. A mask is a bool tensor of the
// weight's shape, true = kept.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

#include "common/nm_pattern.h"

namespace ps {

// Throws ps::Error (naming `what`) unless 1 <= n < m <= 8, `t` is 2-D and its input dimension is a
// multiple of m.
void CheckNMShape(const torch::Tensor& t, NMPattern p, const std::string& what);

// Keeps, in every group, the N entries of largest |score|. Ties go to the lower index (so the
// result is a pure function of the scores, identical on every device and run). +inf is a valid,
// largest score; a NaN anywhere is a ps::Error naming `what`.
torch::Tensor TopNMask(const torch::Tensor& score, NMPattern p, const std::string& what = "score");

// TopNMask without the shape and NaN checks (for inner loops that checked their inputs once).
torch::Tensor TopNMaskUnchecked(const torch::Tensor& score, NMPattern p);

// The same selection, written as loops over plain numbers (the reference TopNMask is tested
// against).
torch::Tensor TopNMaskReference(const torch::Tensor& score, NMPattern p);

// How the non-zeros of a weight are spread over its groups: the "N:M / between / dense" ratios of
// the ProxSparse paper's Figure 1 (for 2:4: 2:4-sparse, 3-sparse, dense).
struct GroupStats {
  int64_t groups = 0;
  int64_t at_most_n = 0;  // groups with <= N non-zeros (N:M-valid)
  int64_t between = 0;    // N+1 .. M-1 non-zeros
  int64_t dense = 0;      // all M non-zero
  double frac_at_most_n() const { return groups ? double(at_most_n) / double(groups) : 0.0; }
  double frac_between() const { return groups ? double(between) / double(groups) : 0.0; }
  double frac_dense() const { return groups ? double(dense) / double(groups) : 0.0; }
  GroupStats& operator+=(const GroupStats& o) {
    groups += o.groups;
    at_most_n += o.at_most_n;
    between += o.between;
    dense += o.dense;
    return *this;
  }
};

// Counts exact non-zeros (a weight) or true entries (a bool mask) per group.
GroupStats ComputeGroupStats(const torch::Tensor& weight_or_mask, NMPattern p);

// Exact validity: every group has at most N non-zeros. (0 violations == valid.)
int64_t CountNMViolations(const torch::Tensor& weight_or_mask, NMPattern p);
inline bool IsNMSparse(const torch::Tensor& weight_or_mask, NMPattern p) {
  return CountNMViolations(weight_or_mask, p) == 0;
}

// Number of positions where two masks of the same shape differ.
int64_t CountMaskFlips(const torch::Tensor& a, const torch::Tensor& b);
// Positions where two PackMaskBits results of masks of the same shape differ (CountMaskFlips of
// the masks), computed on a's device: what a method counts flips between log steps with, keeping
// the previous mask at 1/8 of the bool mask's memory.
int64_t CountPackedMaskFlips(const torch::Tensor& a, const torch::Tensor& b);

// The mask of the non-zeros of `weight` (true where weight != 0).
torch::Tensor NonZeroMask(const torch::Tensor& weight);

// Applies a mask without touching kept weights: where(mask, weight, 0). Kept weights stay
// bit-identical (no multiply, so no -0.0 or NaN*0 surprises).
torch::Tensor ApplyMask(const torch::Tensor& weight, const torch::Tensor& mask);

// Packs a bool mask into bits: flattened row-major, element k is bit (k % 8) of byte k / 8
// (little-endian bit order, numpy.packbits(bitorder="little")); the last byte is zero-padded.
// Returns a uint8 tensor of ceil(numel / 8) bytes on the mask's device.
torch::Tensor PackMaskBits(const torch::Tensor& mask);
// The inverse: a bool CPU tensor of `shape`. ps::Error if the byte count does not match or a
// padding bit is set.
torch::Tensor UnpackMaskBits(const torch::Tensor& packed, torch::IntArrayRef shape);

}  // namespace ps

#include "worker/sparse/native_pack.h"

#include <cstring>

#include "common/error.h"
#include "worker/io/tensor_io.h"
#include "worker/pack/codec24.h"

namespace ps::sparse {

namespace {

pack::DenseRef Ref(const torch::Tensor& w) {
  return pack::DenseRef{
      "weight",
      FromTorch(w.scalar_type()),
      w.size(0),
      w.size(1),
      {static_cast<const std::byte*>(w.data_ptr()), static_cast<size_t>(w.nbytes())}};
}

torch::Tensor FromBytes(const void* p, size_t n, std::vector<int64_t> shape, torch::ScalarType t) {
  auto out = torch::empty(shape, torch::dtype(t));
  if (n) std::memcpy(out.data_ptr(), p, n);
  return out;
}

}  // namespace

NativePacked PackNative(const torch::Tensor& w) {
  if (w.dim() != 2) throw Error("PackNative: the weight must be 2-D");
  const torch::Tensor c = w.to(torch::kCPU).contiguous();
  const auto ref = Ref(c);
  const auto choices = pack::SelectChoices(ref);
  const auto values = pack::GatherKept(ref, choices);
  const auto meta = pack::EncodeNibbles(ref.rows, ref.cols, choices);
  NativePacked p;
  p.values = FromBytes(values.data(), values.size(), {ref.rows, ref.cols / 2}, c.scalar_type());
  p.meta = FromBytes(meta.data(), meta.size(), {ref.rows, pack::BitmaskRowBytes(ref.cols)},
                     torch::kUInt8);
  return p;
}

NativePacked PackNativeOnDevice(const torch::Tensor& w) {
  if (w.dim() != 2) throw Error("PackNativeOnDevice: the weight must be 2-D");
  if (w.size(1) % 4 != 0 || w.size(1) == 0)
    throw Error("PackNativeOnDevice: in_features " + std::to_string(w.size(1)) +
                " is not a positive multiple of 4");
  const int64_t n = w.size(0), groups = w.size(1) / 4;
  // Floating comparison: -0.0 is a zero, NaN a value (as the codec's bit test).
  const torch::Tensor g = w.contiguous().view({n, groups, 4});
  const torch::Tensor nz = g.ne(0);  // [n, groups, 4]
  const torch::Tensor count = nz.sum(-1);
  const torch::Tensor bad = count.gt(2);
  if (bad.any().item<bool>()) {
    const auto first = bad.nonzero()[0].to(torch::kCPU);
    const int64_t r = first[0].item<int64_t>(), gi = first[1].item<int64_t>();
    throw Error("tensor weight row " + std::to_string(r) + " group " + std::to_string(gi) +
                " (columns " + std::to_string(4 * gi) + ".." + std::to_string(4 * gi + 3) +
                ") holds " + std::to_string(count[r][gi].item<int64_t>()) +
                " nonzero values: the weight is not 2:4 sparse (prune it first)");
  }
  // Kept positions: the nonzeros, padded with the lowest zero positions (as PadToTwo does):
  // the two largest of nz * 8 + (3 - position), then in position order.
  const auto pos = torch::arange(4, torch::dtype(torch::kInt32).device(w.device()));
  const torch::Tensor score = nz.to(torch::kInt32) * 8 + (3 - pos);
  const torch::Tensor kept =
      std::get<0>(std::get<1>(score.topk(2, -1)).sort(-1));  // [n, groups, 2]
  NativePacked p;
  p.values = g.gather(-1, kept).reshape({n, groups * 2});
  p.values.masked_fill_(p.values.eq(0), 0);  // a kept -0.0 is stored as +0.0
  torch::Tensor nib = (kept.select(-1, 0) + kept.select(-1, 1) * 4).to(torch::kUInt8);
  if (groups % 2) nib = torch::cat({nib, torch::zeros({n, 1}, nib.options())}, 1);
  const torch::Tensor pairs = nib.view({n, -1, 2});
  p.meta = (pairs.select(-1, 0) + pairs.select(-1, 1) * 16).contiguous();  // [n, ceil(K/8)]
  return p;
}

torch::Tensor UnpackNative(const NativePacked& p) {
  const torch::Tensor v = p.values.to(torch::kCPU).contiguous();
  const torch::Tensor m = p.meta.to(torch::kCPU).contiguous();
  const int64_t rows = p.rows(), cols = p.cols();
  const auto choices = pack::DecodeNibbles(
      "native metadata", rows, cols,
      {static_cast<const std::byte*>(m.data_ptr()), static_cast<size_t>(m.nbytes())});
  const auto dense = pack::ScatterKept(
      FromTorch(v.scalar_type()), rows, cols,
      {static_cast<const std::byte*>(v.data_ptr()), static_cast<size_t>(v.nbytes())}, choices);
  return FromBytes(dense.data(), dense.size(), {rows, cols}, v.scalar_type());
}

torch::Tensor PruneTwoFour(const torch::Tensor& w) {
  if (w.size(-1) % 4 != 0) throw Error("PruneTwoFour: last dimension must be a multiple of 4");
  auto groups = w.reshape({-1, 4});
  // Stable ordering by |w| descending: ties keep the lower index.
  auto idx = std::get<1>(groups.abs()
                             .to(torch::kFloat)
                             .sort(/*stable=*/true, /*dim=*/1,
                                   /*descending=*/true));
  auto mask = torch::zeros_like(groups, torch::dtype(torch::kBool));
  mask.scatter_(1, idx.narrow(1, 0, 2), true);
  return groups.masked_fill(mask.logical_not(), 0).reshape(w.sizes());  // +0.0, never -0.0
}

}  // namespace ps::sparse

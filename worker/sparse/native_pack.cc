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

#include "worker/io/tensor_rows.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "worker/io/tensor_io.h"

namespace ps {
namespace {

// Drops the resident pages of a mapped range we have finished reading (they are clean file pages
// of a read-only mapping, so the kernel reloads them from the file if they are touched again).
// `outward` includes the pages the range only partly covers.
void ReleasePages(std::span<const std::byte> bytes, bool outward = false) {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  auto begin = reinterpret_cast<uintptr_t>(bytes.data());
  uintptr_t first = (begin + (outward ? 0 : page - 1)) / page * page;
  uintptr_t last = (begin + bytes.size() + (outward ? page - 1 : 0)) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace

void CopyRowsReleasing(torch::Tensor& dst, const Checkpoint& ckpt, const std::string& name,
                       int64_t first_row) {
  torch::Tensor all = TensorView(ckpt, name);
  const std::vector<int64_t> src_shape = all.sizes().vec(), dst_shape = dst.sizes().vec();
  const bool same_rest = all.dim() == dst.dim() && all.dim() > 0 &&
                         std::equal(src_shape.begin() + 1, src_shape.end(), dst_shape.begin() + 1);
  if (!same_rest || first_row < 0 || first_row + dst.size(0) > all.size(0))
    throw Error("reading " + name + ": rows " + std::to_string(first_row) + ".." +
                std::to_string(first_row + (dst.dim() ? dst.size(0) : 0)) + " as " +
                c10::str(dst.sizes()) + " do not fit its shape " + c10::str(all.sizes()));
  if (!dst.is_contiguous()) throw Error("reading " + name + ": destination is not contiguous");
  const int64_t row_elems = all.dim() == 1 ? 1 : all[0].numel();
  torch::Tensor src = all.narrow(0, first_row, dst.size(0)).reshape({-1});
  torch::Tensor flat = dst.view({-1});
  const int64_t elem = static_cast<int64_t>(all.element_size());
  auto bytes = ckpt.Data(name).subspan(static_cast<size_t>(first_row * row_elems * elem));
  const int64_t n = src.numel();
  const int64_t step = std::max<int64_t>(1, (int64_t{16} << 20) / elem);
  for (int64_t start = 0; start < n; start += step) {
    const int64_t len = std::min(step, n - start);
    flat.narrow(0, start, len).copy_(src.narrow(0, start, len));
    ReleasePages(bytes.subspan(static_cast<size_t>(start * elem), static_cast<size_t>(len * elem)));
  }
  // A fault maps more than the page it touches (fault-around, large page-cache folios), so pages
  // of the other rows of this tensor may be resident too: drop the whole tensor's.
  ReleaseCheckpointPages(ckpt, name);
}

void ReleaseCheckpointPages(const Checkpoint& ckpt, const std::string& name) {
  ReleasePages(ckpt.Data(name), /*outward=*/true);
}

torch::Tensor ReadRows(const Checkpoint& ckpt, const std::string& name, int64_t begin, int64_t len,
                       const torch::TensorOptions& options) {
  const TensorInfo& info = ckpt.Info(name);
  if (info.shape.empty()) throw Error("reading rows of " + name + ": it is a scalar");
  std::vector<int64_t> shape = info.shape;
  shape[0] = len;
  torch::Tensor out = torch::empty(shape, options);
  CopyRowsReleasing(out, ckpt, name, begin);
  return out;
}

}  // namespace ps

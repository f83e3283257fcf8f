// Reading a tensor, or a block of its rows, out of a memory-mapped checkpoint into memory of its
// own (any dtype, any device): the bytes are copied in slices of about 16 MB and each slice's
// mapped pages are released once copied, so reading costs the destination plus one slice however
// large the tensor. A "row" is a slice along dim 0 (an element of a 1-D tensor); a block of whole
// rows is contiguous in the file, so only its own pages are ever touched.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <string>

#include "common/safetensors.h"

namespace ps {

// Copies rows [first_row, first_row + dst.size(0)) of checkpoint tensor `name` into `dst`
// (contiguous; dtype and device converted). ps::Error naming the tensor when the rows are out of
// range or the other dimensions differ.
void CopyRowsReleasing(torch::Tensor& dst, const Checkpoint& ckpt, const std::string& name,
                       int64_t first_row);

// Drops the resident mapped pages of checkpoint tensor `name` (after reading it through a view):
// they are clean file pages, reloaded from the file if touched again.
void ReleaseCheckpointPages(const Checkpoint& ckpt, const std::string& name);

// Rows [begin, begin + len) of `name` as a new tensor with `options`' dtype and device.
torch::Tensor ReadRows(const Checkpoint& ckpt, const std::string& name, int64_t begin, int64_t len,
                       const torch::TensorOptions& options);

}  // namespace ps

// Host tensors for offloaded optimizer state. Beside a GPU they are page-locked at their exact
// size (an ordinary allocation registered with cudaHostRegister) so that copies to and from the
// GPU are asynchronous DMA transfers. LibTorch's pinned_memory(true) goes through its caching host
// allocator, which rounds every block up to the next power of two: the state of a 13B model's
// 5120x13824 matrices took 256 MB blocks for 141 MB each, and the offloaded 13B state did not fit
// a 125 GiB host.
#pragma once

#include <torch/types.h>

namespace ps {

// Uninitialised host tensor of `sizes` and `dtype`; page-locked at its exact size when `pinned`
// (CUDA builds; ps::Error naming the size when the registration fails), plain otherwise.
torch::Tensor HostTensor(at::IntArrayRef sizes, torch::ScalarType dtype, bool pinned);

}  // namespace ps

#include "worker/distributed/pinned_host.h"

#include <cstdlib>
#include <string>

#ifdef PS_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#include "common/error.h"

namespace ps {

torch::Tensor HostTensor(at::IntArrayRef sizes, torch::ScalarType dtype, bool pinned) {
#ifdef PS_WITH_CUDA
  if (pinned) {
    int64_t numel = 1;
    for (int64_t s : sizes) numel *= s;
    const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
    if (bytes == 0) return torch::empty(sizes, torch::dtype(dtype));
    constexpr size_t kPage = 4096;
    const size_t rounded = (bytes + kPage - 1) / kPage * kPage;
    void* p = std::aligned_alloc(kPage, rounded);
    if (p == nullptr)
      throw Error("offload: cannot allocate " + std::to_string(bytes >> 20) +
                  " MiB of host memory for optimizer state; give the job more host memory or "
                  "more ranks");
    const cudaError_t err = cudaHostRegister(p, rounded, cudaHostRegisterDefault);
    if (err != cudaSuccess) {
      std::free(p);
      throw Error("offload: cannot page-lock " + std::to_string(bytes >> 20) +
                  " MiB of host memory (cudaHostRegister: " + cudaGetErrorString(err) +
                  "); raise the locked-memory limit (ulimit -l) or give the job more ranks");
    }
    return torch::from_blob(
        p, sizes,
        [](void* q) {
          cudaHostUnregister(q);
          std::free(q);
        },
        torch::dtype(dtype));
  }
#else
  (void)pinned;
#endif
  return torch::empty(sizes, torch::dtype(dtype));
}

}  // namespace ps

#include "worker/engine/device_sync.h"

#ifdef PS_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace ps {

void DeviceSync(const torch::Device& device) {
#ifdef PS_WITH_CUDA
  if (device.is_cuda()) c10::cuda::device_synchronize();
#else
  (void)device;
#endif
}

void CurrentStreamSync(const torch::Device& device) {
#ifdef PS_WITH_CUDA
  if (device.is_cuda()) c10::cuda::getCurrentCUDAStream(device.index()).synchronize();
#else
  (void)device;
#endif
}

}  // namespace ps

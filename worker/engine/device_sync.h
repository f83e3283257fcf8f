// Waits for the device's queued work (CUDA) so that host timers measure it; a no-op on CPU.
#pragma once

#include <torch/types.h>

namespace ps {
void DeviceSync(const torch::Device& device);
// Waits for the current stream only (work queued on other streams may still run).
void CurrentStreamSync(const torch::Device& device);
}  // namespace ps

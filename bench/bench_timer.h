// The bench programs' timer: a wall clock for host work, and TimeMs for work that may run on a
// CUDA device (timed between two CUDA events on the default stream when `cuda` is set; needs
// PS_WITH_CUDA, which the CUDA-enabled libraries define).
#pragma once

#include <chrono>
#include <functional>

#ifdef PS_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace ps::bench {

class Stopwatch {
 public:
  Stopwatch() : start_(Clock::now()) {}
  void Reset() { start_ = Clock::now(); }
  double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }
  double Ms() const { return 1e3 * Seconds(); }

 private:
  using Clock = std::chrono::steady_clock;
  Clock::time_point start_;
};

// Runs fn() `reps` times with prepare() before each (untimed) and returns the mean ms of fn.
// With `cuda`, the device is synchronised before each run and fn is timed by CUDA events.
inline double TimeMs([[maybe_unused]] bool cuda, int reps, const std::function<void()>& prepare,
                     const std::function<void()>& fn) {
  double total = 0;
  for (int r = 0; r < reps; ++r) {
    prepare();
#ifdef PS_WITH_CUDA
    if (cuda) {
      cudaEvent_t a, b;
      cudaEventCreate(&a);
      cudaEventCreate(&b);
      cudaDeviceSynchronize();
      cudaEventRecord(a, 0);
      fn();
      cudaEventRecord(b, 0);
      cudaEventSynchronize(b);
      float ms = 0;
      cudaEventElapsedTime(&ms, a, b);
      total += ms;
      cudaEventDestroy(a);
      cudaEventDestroy(b);
      continue;
    }
#endif
    const Stopwatch sw;
    fn();
    total += sw.Ms();
  }
  return total / reps;
}

}  // namespace ps::bench

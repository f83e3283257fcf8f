#include "worker/methods/seeded_random.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <mutex>

namespace ps {

namespace {
uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

at::Generator GeneratorFor(const torch::Device& device, uint64_t seed) {
  if (device.is_cpu()) return at::make_generator<at::CPUGeneratorImpl>(seed);
  at::Generator gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_current_seed(seed);
  return gen;
}
}  // namespace

uint64_t MixSeed(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  return SplitMix(SplitMix(SplitMix(SplitMix(a) ^ b) ^ c) ^ d);
}

torch::Tensor SeededUniform(torch::IntArrayRef shape, uint64_t seed,
                            const torch::TensorOptions& options) {
  return torch::rand(shape, GeneratorFor(options.device(), seed), options);
}

torch::Tensor SeededNormal(torch::IntArrayRef shape, uint64_t seed,
                           const torch::TensorOptions& options) {
  return torch::randn(shape, GeneratorFor(options.device(), seed), options);
}

}  // namespace ps

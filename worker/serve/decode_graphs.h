// CUDA graphs of the server's fixed-shape decode step (engine.h): one graph per (rows, key length)
// bucket, captured the first time that bucket runs and replayed from then on, all in one memory
// pool (replays never overlap). A decode step of a 7B model is hundreds of small launches whose
// CPU cost is comparable to the GPU work at small batches; a replay is one launch.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace ps::serve {

class DecodeGraphs {
 public:
  DecodeGraphs();  // throws in a build without CUDA
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Runs `step` (which must read only tensors whose addresses stay fixed) for bucket (rows, len):
  // the first time eagerly once (first-call work such as kernel choices happens outside the
  // capture) and then captured; every time by replaying the graph. Returns the step's output,
  // which the next Run may overwrite.
  torch::Tensor Run(int64_t rows, int64_t len, const std::function<torch::Tensor()>& step);
  int64_t size() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace ps::serve

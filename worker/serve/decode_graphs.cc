#include "worker/serve/decode_graphs.h"

#include <map>
#include <utility>

#include "common/error.h"

#ifdef PS_SERVE_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/cuda.h>
#endif

namespace ps::serve {

#ifdef PS_SERVE_WITH_CUDA

struct DecodeGraphs::State {
  struct Entry {
    std::unique_ptr<at::cuda::CUDAGraph> graph;
    torch::Tensor out;
  };
  std::map<std::pair<int64_t, int64_t>, Entry> entries;
  decltype(at::cuda::graph_pool_handle()) pool = at::cuda::graph_pool_handle();
};

DecodeGraphs::DecodeGraphs() : s_(std::make_unique<State>()) {}

torch::Tensor DecodeGraphs::Run(int64_t rows, int64_t len,
                                const std::function<torch::Tensor()>& step) {
  auto it = s_->entries.find({rows, len});
  if (it == s_->entries.end()) {
    State::Entry e;
    e.graph = std::make_unique<at::cuda::CUDAGraph>();
    torch::cuda::synchronize();  // the static inputs were written on the current stream
    c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool();
    {
      c10::cuda::CUDAStreamGuard guard(side);  // capture needs a stream other than the default
      step();  // warm-up: writes the same keys the replay below writes again
      side.synchronize();
      e.graph->capture_begin(s_->pool, cudaStreamCaptureModeThreadLocal);
      try {
        e.out = step();
      } catch (...) {
        try {  // leave capture mode so that the process can go on
          e.graph->capture_end();
        } catch (...) {
        }
        throw;
      }
      e.graph->capture_end();
    }
    it = s_->entries.emplace(std::make_pair(rows, len), std::move(e)).first;
  }
  it->second.graph->replay();  // on the current stream, after its input copies
  return it->second.out;
}

int64_t DecodeGraphs::size() const { return static_cast<int64_t>(s_->entries.size()); }

#else

struct DecodeGraphs::State {};

DecodeGraphs::DecodeGraphs() {
  throw Error("CUDA graphs need a CUDA build of psserve; serve with --cuda-graphs off");
}

torch::Tensor DecodeGraphs::Run(int64_t, int64_t, const std::function<torch::Tensor()>&) {
  throw Error("CUDA graphs need a CUDA build of psserve");
}

int64_t DecodeGraphs::size() const { return 0; }

#endif

DecodeGraphs::~DecodeGraphs() = default;

}  // namespace ps::serve

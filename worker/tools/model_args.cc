#include "worker/tools/model_args.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>

#include "common/error.h"

namespace ps {

void ModelArgs::Add(CLI::App& app) {
  app.add_option("--model", model, "Hugging Face model directory")->required();
  app.add_option("--device", device, "where to run")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--dtype", dtype, "compute dtype: fp32, bf16 or fp16")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (default: one per core)");
}

std::shared_ptr<LlamaForCausalLM> ModelArgs::Load() const {
  if (model.empty()) throw Error("--model DIR is required");
  if (threads > 0) at::set_num_threads(threads);
  LoadOptions opts;
  opts.dtype = ParseComputeDType(dtype);
  if (device == "cuda") {
    if (!at::hasCUDA()) throw Error("--device cuda: this build or machine has no CUDA");
    opts.device = torch::Device(torch::kCUDA, 0);
  } else if (device != "cpu") {
    throw Error("--device must be cpu or cuda, got '" + device + "'");
  }
  return LoadLlama(model, opts);
}

}  // namespace ps

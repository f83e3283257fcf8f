#include "worker/tools/model_args.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include "common/error.h"

namespace ps {

std::string FlagValue(const std::vector<std::string>& args, size_t& i) {
  if (i + 1 >= args.size()) throw Error(args[i] + " needs a value");
  return args[++i];
}

bool ModelArgs::Parse(const std::vector<std::string>& args, size_t& i) {
  const std::string& a = args[i];
  if (a == "--model") {
    model = FlagValue(args, i);
  } else if (a == "--device") {
    device = FlagValue(args, i);
  } else if (a == "--dtype") {
    dtype = FlagValue(args, i);
  } else if (a == "--threads") {
    std::string v = FlagValue(args, i);
    try {
      threads = std::stoi(v);
    } catch (const std::exception&) {
      throw Error("--threads: not a number: '" + v + "'");
    }
  } else {
    return false;
  }
  return true;
}

const char* ModelArgs::Help() {
  return "  --model DIR          Hugging Face model directory (required)\n"
         "  --device cpu|cuda    where to run (default cpu)\n"
         "  --dtype fp32|bf16|fp16  compute dtype (default fp32)\n"
         "  --threads N          CPU threads (default: one per core)\n";
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

#include "worker/tools/model_args.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/pack/pack_io.h"
#include "worker/pack/pack_model.h"

namespace ps {

void ModelArgs::Add(CLI::App& app) {
  app.add_option("--model", model, "Hugging Face model directory")->required();
  app.add_option("--device", device, "where to run")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  app.add_option("--dtype", dtype, "compute dtype: fp32, bf16 or fp16")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (default: one per core)");
}

bool IsPackedArtifact(const std::filesystem::path& dir) {
  if (std::filesystem::exists(dir / pack::kManifestName)) return true;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(dir / "config.json", ec)) return false;
  try {
    auto config = nlohmann::json::parse(ReadFile(dir / "config.json"));
    for (const char* key : {"quantization_config", "compression_config"})
      if (config.contains(key) && config[key].is_object() &&
          config[key].contains("sparsity_config"))
        return true;
  } catch (const nlohmann::json::exception&) {
  }
  return false;
}

std::shared_ptr<LlamaForCausalLM> ModelArgs::Load() const {
  if (model.empty()) throw Error("--model DIR is required");
  if (IsPackedArtifact(model)) {
    // compressed-tensors / native 2:4: restored bit for bit into a temporary directory, loaded,
    // and the directory removed again.
    std::string tmpl = (std::filesystem::temp_directory_path() / "pstool-unpack-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw Error("cannot create a temporary directory in " + tmpl);
    const std::filesystem::path tmp = tmpl;
    std::shared_ptr<LlamaForCausalLM> loaded;
    try {
      auto rep = pack::UnpackModel({model, tmp / "model", ""});
      std::fprintf(stderr, "%s: %s 2:4 artifact, unpacked (%lld tensors) for loading\n",
                   model.c_str(), rep.format.c_str(), static_cast<long long>(rep.restored_tensors));
      ModelArgs dense = *this;
      dense.model = (tmp / "model").string();
      loaded = dense.Load();
    } catch (...) {
      RemoveTree(tmp);
      throw;
    }
    RemoveTree(tmp);
    return loaded;
  }
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

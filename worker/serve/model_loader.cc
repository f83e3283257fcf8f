#include "worker/serve/model_loader.h"

#include <ATen/Context.h>
#include <unistd.h>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/pack/pack_model.h"
#include "worker/sparse/random_model.h"
#ifdef PS_SERVE_WITH_SPARSE
#include "worker/sparse/sparse_model.h"
#endif

namespace ps::serve {

namespace fs = std::filesystem;

std::string DetectArtifact(const fs::path& dir) {
  if (fs::exists(dir / "masks.safetensors")) return "masks";
  if (fs::exists(dir / "config.json")) {
    const auto c = nlohmann::json::parse(ReadFile(dir / "config.json"));
    for (const char* key : {"quantization_config", "compression_config"})
      if (c.contains(key) && c[key].is_object() && c[key].contains("sparsity_config"))
        return "compressed-tensors";
  }
  if (fs::exists(dir / "ps_pack.json")) {
    const auto m = nlohmann::json::parse(ReadFile(dir / "ps_pack.json"));
    if (m.value("format", "") == "native") return "native";
  }
  return "hf";
}

namespace {

// Removes the scratch copy when loading ends, whether it succeeded or not.
struct ScratchDir {
  fs::path path;
  ~ScratchDir() {
    if (!path.empty()) RemoveTree(path);
  }
};

nlohmann::json Sparsify(LlamaForCausalLM& model, const std::string& mode) {
#ifdef PS_SERVE_WITH_SPARSE
  const auto rep = sparse::SparsifyModel(model);
  if (mode == "on" && rep.linears == 0)
    throw Error("--sparse on: no target of this model is 2:4 sparse (" +
                std::to_string(rep.skipped.size()) + " left dense)");
  return {{"linears", rep.linears},           {"dense_weight_bytes", rep.dense_weight_bytes},
          {"native_bytes", rep.native_bytes}, {"cusparselt_bytes", rep.cusparselt_bytes},
          {"skipped", rep.skipped},           {"notes", rep.notes}};
#else
  (void)model;
  if (mode == "on") throw Error("--sparse on: this build has no 2:4 GPU kernels (CUDA LibTorch)");
  return {};
#endif
}

}  // namespace

LoadedModel LoadModel(const LoadSpec& spec) {
  if (spec.sparse != "auto" && spec.sparse != "on" && spec.sparse != "off")
    throw Error("--sparse must be auto, on or off, got '" + spec.sparse + "'");
  LoadOptions opts;
  opts.dtype = ParseComputeDType(spec.dtype);
  if (spec.device == "cuda") {
    if (!at::hasCUDA()) throw Error("--device cuda: this build or machine has no CUDA");
    opts.device = torch::Device(torch::kCUDA, 0);
  } else if (spec.device != "cpu") {
    throw Error("--device must be cpu or cuda, got '" + spec.device + "'");
  }
  if (spec.device == "cpu" && spec.sparse == "on")
    throw Error("--sparse on needs --device cuda (the 2:4 kernels are GPU kernels)");
  LoadedModel out;
  if (!spec.random_shape.empty()) {
    if (spec.tokenizer.empty())
      throw Error("--random-shape needs --tokenizer DIR (a model directory with a tokenizer)");
    // The vocabulary is the tokenizer's, so every generated id decodes (the lm_head is then
    // the tokenizer's size, the same for the dense and the 2:4 runs of a benchmark).
    out.tokenizer = LoadTokenizer(spec.tokenizer);
    auto config = sparse::NamedShapeConfig(spec.random_shape, spec.random_layers);
    config["vocab_size"] = out.tokenizer->vocab_size();
    out.model = sparse::RandomSparseModel(config, torch::dtype(opts.dtype).device(opts.device), 0);
    out.name = spec.random_shape + "-random-2:4";
    out.artifact = "random";
    out.tokenizer_dir = spec.tokenizer;
  } else {
    if (spec.model.empty()) throw Error("--model DIR is required (or --random-shape NAME)");
    if (!fs::is_directory(spec.model))
      throw Error("--model " + spec.model.string() + ": not a directory");
    out.artifact = DetectArtifact(spec.model);
    out.name = fs::absolute(spec.model).lexically_normal().filename().string();
    ScratchDir scratch;
    fs::path dense = spec.model;
    if (out.artifact != "hf") {
      const fs::path root = spec.scratch.empty() ? fs::temp_directory_path() : spec.scratch;
      scratch.path = root / ("psserve-" + std::to_string(::getpid()) + "-dense");
      RemoveTree(scratch.path);
      pack::UnpackOptions u;
      u.input = spec.model;
      u.output = scratch.path;
      if (out.artifact == "masks") {
        if (spec.base_model.empty())
          throw Error(spec.model.string() + " holds masks only: give --base-model DENSE_DIR");
        u.base_model = spec.base_model;
      }
      pack::UnpackModel(u);
      dense = scratch.path;
    }
    out.model = LoadLlama(dense, opts);
    // A masks artifact is one file: the tokenizer is the base model's.
    out.tokenizer_dir = !spec.tokenizer.empty()   ? spec.tokenizer
                        : out.artifact == "masks" ? spec.base_model
                                                  : spec.model;
  }
  if (!out.tokenizer) out.tokenizer = LoadTokenizer(out.tokenizer_dir);
  out.model->eval();
  if (spec.device == "cuda" && spec.sparse != "off") out.sparse = Sparsify(*out.model, spec.sparse);
  return out;
}

}  // namespace ps::serve

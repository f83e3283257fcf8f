// What psserve serves: a published model directory in any of the forms `pstool pack` writes (the
// dense Hugging Face directory, compressed-tensors sparse-24-bitmask, the native packed form, or
// masks + a base model), or a random 2:4 model of a named shape for benchmarks. Packed forms are
// unpacked (exactly, tested in worker/pack) into a scratch directory that is removed once the
// weights are loaded. On the GPU the 2:4 targets then move onto the 2:4 kernels
// (worker/sparse/SparsifyModel) unless --sparse off.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "worker/models/llama_model.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps::serve {

struct LoadSpec {
  std::filesystem::path model;       // a model directory (any form above)
  std::filesystem::path base_model;  // masks artifacts only
  std::string random_shape;          // instead of `model`: e.g. "llama2-7b" (random 2:4 weights)
  int64_t random_layers = -1;        // layers of the random shape (-1: all)
  std::filesystem::path tokenizer;   // tokenizer directory (default: the model directory)
  std::string device = "cpu";        // cpu | cuda
  std::string dtype = "fp32";        // fp32 | bf16 | fp16
  std::string sparse = "auto";       // auto (GPU: 2:4 kernels) | on | off
  std::filesystem::path scratch;     // where packed forms are unpacked (default: temp dir)
};

struct LoadedModel {
  std::shared_ptr<LlamaForCausalLM> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::string name;       // what /v1/models reports
  std::string artifact;   // hf | compressed-tensors | native | masks | random
  nlohmann::json sparse;  // what moved onto the 2:4 kernels (empty on the CPU / off)
  std::filesystem::path tokenizer_dir;
};

// The artifact kind of a directory: "masks", "compressed-tensors", "native" or "hf".
std::string DetectArtifact(const std::filesystem::path& dir);

LoadedModel LoadModel(const LoadSpec& spec);

}  // namespace ps::serve

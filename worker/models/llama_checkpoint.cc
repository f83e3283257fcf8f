#include "worker/models/llama_checkpoint.h"

#include <set>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/io/tensor_io.h"
#include "worker/io/tensor_rows.h"

namespace ps {
namespace {

bool Ignorable(const std::string& name, const LlamaConfig& c) {
  // Older exports carry RoPE buffers; tied models sometimes still store lm_head.
  if (name.size() > 21 && name.ends_with(".rotary_emb.inv_freq")) return true;
  return c.tie_word_embeddings && name == "lm_head.weight";
}

// "[48, 32]".
std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

std::string ListFew(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < 5; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > 5) out += ", ... (" + std::to_string(names.size()) + " in all)";
  return out;
}

}  // namespace

torch::ScalarType ParseComputeDType(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16") return torch::kFloat16;
  throw Error("unknown dtype '" + name + "' (fp32, bf16, fp16)");
}

torch::ScalarType ToScalarType(ComputeDType dtype) {
  return ParseComputeDType(std::string(ChoiceName(dtype)));
}

std::string HfDTypeName(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return "float32";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    default:
      throw Error(std::string("unsupported model dtype ") + c10::toString(t));
  }
}

void LoadLlamaWeights(LlamaForCausalLM& model, const Checkpoint& ckpt,
                      const LeaveEmpty& leave_empty) {
  const std::string where = ckpt.dir().string();
  std::vector<std::string> missing, unexpected;
  std::set<std::string> expected;
  torch::NoGradGuard no_grad;
  // The shapes the config implies, from a storage-less twin (the model's own parameters may be
  // deferred: 0-element until filled here).
  LlamaForCausalLM shapes(model.config(),
                          torch::TensorOptions().dtype(model.dtype()).device(torch::kMeta));
  auto twin = shapes.named_parameters(/*recurse=*/true);
  auto params = model.named_parameters(/*recurse=*/true);
  for (const auto& item : params) {
    const std::string& name = item.key();
    expected.insert(name);
    if (!ckpt.Contains(name)) {
      missing.push_back(name);
      continue;
    }
    const TensorInfo& info = ckpt.Info(name);
    torch::Tensor p = item.value();
    const torch::Tensor* shaped = twin.find(name);
    if (!shaped) throw Error(where + ": the model has no parameter " + name);
    std::vector<int64_t> want = shaped->sizes().vec();
    if (info.shape != want) {
      throw Error(where + ": tensor '" + name + "' has shape " + ShapeString(info.shape) +
                  " but the config implies " + ShapeString(want) + " (in " +
                  ckpt.FileOf(name).path().filename().string() + ")");
    }
    if (!IsFloating(info.dtype)) {
      throw Error(where + ": tensor '" + name + "' has non-floating dtype " +
                  std::string(DTypeName(info.dtype)));
    }
    if (leave_empty && leave_empty(name)) continue;
    if (p.sizes().vec() != want) p.set_data(torch::empty(want, p.options()));
    CopyRowsReleasing(p, ckpt, name, 0);
  }
  if (!missing.empty()) {
    throw Error(where + ": checkpoint lacks " + std::to_string(missing.size()) +
                " tensor(s) the config needs: " + ListFew(missing));
  }
  for (const auto& name : ckpt.Names()) {
    if (!expected.count(name) && !Ignorable(name, model.config())) unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    throw Error(where + ": checkpoint has tensor(s) this config does not use: " +
                ListFew(unexpected) + " (wrong config.json, or an unsupported variant)");
  }
}

std::shared_ptr<LlamaForCausalLM> LoadLlama(const std::filesystem::path& dir,
                                            const LoadOptions& options,
                                            const LeaveEmpty& leave_empty) {
  if (!std::filesystem::is_directory(dir)) throw Error(dir.string() + ": not a directory");
  LlamaConfig config = LoadLlamaConfig(dir);
  Checkpoint ckpt = Checkpoint::Open(dir);
  std::shared_ptr<LlamaForCausalLM> model;
  {
    // Each parameter gets its storage as it is read (LoadLlamaWeights), so tensors left empty
    // are never allocated at all.
    DeferParameterAllocation defer;
    model = std::make_shared<LlamaForCausalLM>(config,
                                               torch::dtype(options.dtype).device(options.device));
  }
  LoadLlamaWeights(*model, ckpt, leave_empty);
  model->eval();
  return model;
}

void SaveLlama(LlamaForCausalLM& model, const std::filesystem::path& dir,
               const SaveOptions& options) {
  std::filesystem::create_directories(dir);
  torch::ScalarType dtype = options.dtype.value_or(model.dtype());
  LlamaConfig config = model.config();
  config.dtype = HfDTypeName(dtype);
  WriteFileAtomic(dir / "config.json", LlamaConfigToJson(config).dump(2) + "\n");

  // Plan shards by byte size, in parameter order (embeddings first, like transformers).
  std::vector<std::pair<std::string, torch::Tensor>> params;
  for (const auto& item : model.named_parameters(true))
    params.emplace_back(item.key(), item.value());
  size_t elem = static_cast<size_t>(c10::elementSize(dtype));
  std::vector<std::vector<size_t>> shards(1);
  uint64_t in_shard = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    uint64_t bytes = static_cast<uint64_t>(params[i].second.numel()) * elem;
    if (!shards.back().empty() && in_shard + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(i);
    in_shard += bytes;
  }
  const std::map<std::string, std::string> metadata = {{"format", "pt"}};
  std::filesystem::remove(dir / "model.safetensors.index.json");
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string file = "model.safetensors";
    if (shards.size() > 1) {
      char buf[64];
      std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
      file = buf;
    }
    std::vector<std::pair<std::string, torch::Tensor>> out;
    for (size_t i : shards[s]) {
      out.emplace_back(params[i].first, params[i].second.detach().to(torch::kCPU, dtype));
      weight_map[params[i].first] = file;
      total += static_cast<uint64_t>(params[i].second.numel()) * elem;
    }
    SaveTensors(dir / file, out, metadata);
  }
  if (shards.size() > 1) {
    std::filesystem::remove(dir / "model.safetensors");
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    WriteFileAtomic(dir / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  if (options.copy_files_from) {
    static const char* kFiles[] = {"tokenizer.model",
                                   "tokenizer.json",
                                   "tokenizer_config.json",
                                   "special_tokens_map.json",
                                   "generation_config.json",
                                   "added_tokens.json",
                                   "vocab.json",
                                   "merges.txt"};
    for (const char* f : kFiles) {
      auto src = *options.copy_files_from / f;
      if (std::filesystem::exists(src) &&
          !std::filesystem::equivalent(*options.copy_files_from, dir)) {
        WriteFileAtomic(dir / f, ReadFile(src));
      }
    }
  }
}

}  // namespace ps

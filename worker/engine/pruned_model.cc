#include "worker/engine/pruned_model.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "worker/io/tensor_io.h"

namespace ps {

void CopyModelSideFiles(const std::filesystem::path& from, const std::filesystem::path& to) {
  for (const char* f : {"config.json", "generation_config.json", "tokenizer.model",
                        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    if (std::filesystem::exists(from / f))
      std::filesystem::copy_file(from / f, to / f,
                                 std::filesystem::copy_options::overwrite_existing);
  }
}

PublishStats WritePrunedModel(const std::filesystem::path& original_dir,
                              const std::filesystem::path& out_dir, const TensorReplacer& replace,
                              uint64_t max_shard_bytes) {
  Checkpoint ckpt = Checkpoint::Open(original_dir);
  std::filesystem::create_directories(out_dir);
  // Plan shards in name order by the original sizes (a replacement keeps shape and dtype).
  std::vector<std::vector<std::string>> shards(1);
  uint64_t in_shard = 0;
  for (const auto& name : ckpt.Names()) {
    uint64_t b = ckpt.Info(name).Bytes();
    if (in_shard > 0 && in_shard + b > max_shard_bytes) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(name);
    in_shard += b;
  }
  PublishStats stats;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    std::string file = shards.size() == 1
                           ? "model.safetensors"
                           : "model-" + std::string(5 - std::to_string(s + 1).size(), '0') +
                                 std::to_string(s + 1) + "-of-" +
                                 std::string(5 - std::to_string(shards.size()).size(), '0') +
                                 std::to_string(shards.size()) + ".safetensors";
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& name : shards[s]) {
      torch::Tensor original = TensorView(ckpt, name);
      torch::Tensor out = original;
      if (auto r = replace(name, original)) {
        if (r->sizes() != original.sizes() || r->scalar_type() != original.scalar_type())
          throw Error("publishing " + name + ": the replacement changes shape or dtype");
        out = *r;
        ++stats.replaced;
      }
      tensors.emplace_back(name, out);
      weight_map[name] = file;
      stats.bytes += static_cast<uint64_t>(out.numel() * out.element_size());
      ++stats.tensors;
    }
    SaveTensors(out_dir / file, tensors, {{"format", "pt"}});
  }
  if (shards.size() > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", stats.bytes}}},
                                    {"weight_map", weight_map}};
    WriteFileAtomic(out_dir / "model.safetensors.index.json", index.dump(2));
  }
  CopyModelSideFiles(original_dir, out_dir);
  return stats;
}

}  // namespace ps

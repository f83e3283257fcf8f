#include "worker/engine/pruned_model.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"
#include "common/safetensors.h"
#include "worker/io/tensor_io.h"
#include "worker/io/tensor_rows.h"

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
    // Tensor by tensor: each replacement exists only while its bytes are written, and the
    // original's mapped pages are dropped once it has been read.
    std::vector<TensorHeader> headers;
    for (const auto& name : shards[s]) {
      const TensorInfo& info = ckpt.Info(name);
      headers.push_back({name, info.dtype, info.shape});
      weight_map[name] = file;
    }
    torch::Tensor current;
    std::string previous;
    auto bytes_of = [&](size_t i) -> std::span<const std::byte> {
      current = torch::Tensor();
      if (!previous.empty()) ReleaseCheckpointPages(ckpt, previous);
      const std::string& name = shards[s][i];
      previous = name;
      const torch::Tensor original = TensorView(ckpt, name);
      if (auto r = replace(name, original)) {
        if (r->sizes() != original.sizes() || r->scalar_type() != original.scalar_type())
          throw Error("publishing " + name + ": the replacement changes shape or dtype");
        current = r->to(torch::kCPU).contiguous();
        ++stats.replaced;
        stats.bytes += static_cast<uint64_t>(current.numel() * current.element_size());
        ++stats.tensors;
        return {static_cast<const std::byte*>(current.data_ptr()),
                static_cast<size_t>(current.numel() * current.element_size())};
      }
      ++stats.tensors;
      stats.bytes += ckpt.Info(name).Bytes();
      return ckpt.Data(name);
    };
    WriteSafetensorsStreamed(out_dir / file, headers, bytes_of, {{"format", "pt"}});
    current = torch::Tensor();
    if (!previous.empty()) ReleaseCheckpointPages(ckpt, previous);
    previous.clear();
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

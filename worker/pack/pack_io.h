// File plumbing shared by pack and unpack: output directories, side files (config, tokenizer),
// shard writing with the index, sizes. Torch-free.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/safetensors.h"
#include "worker/pack/codec24.h"

namespace ps::pack {

inline constexpr char kManifestName[] = "ps_pack.json";
inline constexpr char kIndexName[] = "model.safetensors.index.json";
inline constexpr char kMasksFile[] = "masks.safetensors";

// Checks that `out` does not exist or is an empty directory, and differs from `in`; creates its
// parent.
void PrepareOutputDir(const std::filesystem::path& out, const std::filesystem::path& in);

// Everything is written into a staging directory beside `out` that becomes `out` only when
// Commit() runs, so a failure never leaves a half-written artifact that looks complete.
class StagingDir {
 public:
  StagingDir(std::filesystem::path out, const std::filesystem::path& in);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;
  const std::filesystem::path& path() const { return tmp_; }
  void Commit();

 private:
  std::filesystem::path out_;
  std::filesystem::path tmp_;
  bool done_ = false;
};
// Copies the regular files of `from` other than weights, index, manifest and `skip` names.
void CopySideFiles(const std::filesystem::path& from, const std::filesystem::path& to,
                   const std::vector<std::string>& skip = {});
uint64_t SafetensorsBytes(const std::filesystem::path& dir);  // sum of *.safetensors sizes
uint64_t DirBytes(const std::filesystem::path& dir);          // sum of regular file sizes
nlohmann::json ReadJsonFile(const std::filesystem::path& path);
void WriteJsonFile(const std::filesystem::path& path, const nlohmann::json& j);

// The tensors of one checkpoint file that the checkpoint's index actually names, in file order.
std::vector<const TensorInfo*> IndexedTensors(const Checkpoint& ckpt, const SafetensorsFile& f);
DenseRef RefOf(const SafetensorsFile& f, const TensorInfo& t);
// Throws unless `t` is 2-D.
void Require2D(const SafetensorsFile& f, const TensorInfo& t);

// Builds one output safetensors file; tensors either borrow bytes (from a mapped input that
// outlives the writer) or own them.
class ShardWriter {
 public:
  void Borrow(std::string name, DType dtype, std::vector<int64_t> shape,
              std::span<const std::byte> bytes);
  void Own(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<std::byte> bytes);
  void Own(std::string name, std::vector<int64_t> shape, std::vector<uint8_t> bytes);  // U8
  void OwnI64(std::string name, std::vector<int64_t> shape, const std::vector<int64_t>& values);
  // Writes `dir/file`, records every tensor in `weight_map` and adds its bytes to `total`.
  void Write(const std::filesystem::path& dir, const std::string& file,
             const std::map<std::string, std::string>& metadata,
             std::map<std::string, std::string>& weight_map, uint64_t& total);

 private:
  std::vector<TensorToWrite> tensors_;
  std::deque<std::vector<std::byte>> owned_;
};

// Writes model.safetensors.index.json.
void WriteIndex(const std::filesystem::path& dir,
                const std::map<std::string, std::string>& weight_map, uint64_t total_size);
// safetensors metadata for an output file: the input's, with "format": "pt" (transformers wants
// it) and `extra` added.
std::map<std::string, std::string> OutputMetadata(const SafetensorsFile& in,
                                                  const std::map<std::string, std::string>& extra);

}  // namespace ps::pack

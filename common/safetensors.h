// safetensors files (https://github.com/huggingface/safetensors format): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then
// the raw little-endian tensor bytes. Reading memory-maps the file and validates the whole header
// before any byte is handed out, so a bad file is a ps::Error naming the file and the problem,
// never an out-of-bounds read. Torch-free: the coordinator plans from these headers too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"

namespace ps {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;

  int64_t Numel() const;
  uint64_t Bytes() const { return end - begin; }
};

class SafetensorsFile {
 public:
  // Opens, maps and validates `path`. Throws ps::Error on any problem.
  static std::shared_ptr<const SafetensorsFile> Open(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  // Tensors in the order of their data offsets.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* Find(std::string_view name) const;
  // Throws ps::Error naming the file when absent.
  const TensorInfo& Get(std::string_view name) const;
  std::span<const std::byte> Data(const TensorInfo& info) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  const std::byte* map_ = nullptr;
  uint64_t size_ = 0;
  uint64_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

// Parses and validates only the header (reads the first bytes, no mapping). Used where only
// names/shapes are needed (the coordinator's shard planning).
std::vector<TensorInfo> ReadSafetensorsHeader(
    const std::filesystem::path& path, std::map<std::string, std::string>* metadata = nullptr);

// One tensor to write: its bytes must be Numel × DTypeSize long, little-endian.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
};

// Writes a safetensors file atomically (temporary file, fsync, rename): a crash never leaves a
// half-written file under `path`. Tensors are laid out in the given order; header padded to 8.
void WriteSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// What the header says of a tensor whose bytes come later.
struct TensorHeader {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
};
// Tensor i's bytes (Numel × DTypeSize of headers[i]); they must stay valid until the next call.
using TensorBytes = std::function<std::span<const std::byte>(size_t i)>;

// The same, streamed: the header from `headers`, then bytes_of(0), bytes_of(1), ... each called
// once, right before its bytes are written, so only one tensor need exist at a time (a file
// larger than memory can be written). ps::Error naming the tensor when its bytes have the wrong
// size; nothing is left under `path` then.
void WriteSafetensorsStreamed(const std::filesystem::path& path,
                              const std::vector<TensorHeader>& headers, const TensorBytes& bytes_of,
                              const std::map<std::string, std::string>& metadata = {});

// A Hugging Face checkpoint directory: `model.safetensors`, or shards listed by
// `model.safetensors.index.json` (weight_map: tensor name -> shard file).
class Checkpoint {
 public:
  // Throws ps::Error if the directory has neither layout, or the index names missing files or
  // tensors that are not in the shard it names.
  static Checkpoint Open(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  // Every tensor name, sorted.
  std::vector<std::string> Names() const;
  bool Contains(std::string_view name) const;
  const SafetensorsFile& FileOf(std::string_view name) const;
  const TensorInfo& Info(std::string_view name) const;
  std::span<const std::byte> Data(std::string_view name) const;
  const std::vector<std::shared_ptr<const SafetensorsFile>>& files() const { return files_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::shared_ptr<const SafetensorsFile>> files_;
  std::map<std::string, size_t, std::less<>> where_;  // tensor -> index into files_
};

}  // namespace ps

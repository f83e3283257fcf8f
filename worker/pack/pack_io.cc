#include "worker/pack/pack_io.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/file_util.h"

namespace ps::pack {

namespace fs = std::filesystem;

void PrepareOutputDir(const fs::path& out, const fs::path& in) {
  if (out.empty()) throw Error("--output DIR is required");
  std::error_code ec;
  if (fs::exists(out)) {
    if (fs::exists(in) && fs::equivalent(out, in, ec))
      throw Error("output directory " + out.string() + " is the input directory");
    if (!fs::is_directory(out)) throw Error("output " + out.string() + " exists and is a file");
    if (!fs::is_empty(out))
      throw Error("output directory " + out.string() + " is not empty (refusing to overwrite)");
  }
  const fs::path parent = fs::absolute(out).parent_path();
  fs::create_directories(parent, ec);
  if (ec) throw Error("cannot create " + parent.string() + ": " + ec.message());
}

StagingDir::StagingDir(fs::path out, const fs::path& in) : out_(std::move(out)) {
  PrepareOutputDir(out_, in);
  tmp_ = out_;
  tmp_ += ".partial." + std::to_string(::getpid());
  if (const std::error_code ec = RemoveTree(tmp_))  // a stale one of a reused pid
    throw Error("cannot clear " + tmp_.string() + ": " + ec.message());
  std::error_code ec;
  fs::create_directories(tmp_, ec);
  if (ec) throw Error("cannot create " + tmp_.string() + ": " + ec.message());
}

StagingDir::~StagingDir() {
  if (done_) return;
  RemoveTree(tmp_);
}

void StagingDir::Commit() {
  std::error_code ec;
  fs::remove(out_, ec);  // PrepareOutputDir made sure it is absent or an empty directory
  fs::rename(tmp_, out_, ec);
  if (ec)
    throw Error("cannot rename " + tmp_.string() + " to " + out_.string() + ": " + ec.message());
  done_ = true;
}

void CopySideFiles(const fs::path& from, const fs::path& to, const std::vector<std::string>& skip) {
  for (const auto& e : fs::directory_iterator(from)) {
    if (!e.is_regular_file()) continue;
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".safetensors" || name == kIndexName || name == kManifestName)
      continue;
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    if (name.find(".tmp.") != std::string::npos) continue;
    WriteFileAtomic(to / name, ReadFile(e.path()));
  }
}

uint64_t SafetensorsBytes(const fs::path& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".safetensors") n += e.file_size();
  return n;
}

uint64_t DirBytes(const fs::path& dir) {
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

nlohmann::json ReadJsonFile(const fs::path& path) {
  try {
    return nlohmann::json::parse(ReadFile(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path.string() + ": malformed JSON: " + e.what());
  }
}

void WriteJsonFile(const fs::path& path, const nlohmann::json& j) {
  WriteFileAtomic(path, j.dump(2) + "\n");
}

std::vector<const TensorInfo*> IndexedTensors(const Checkpoint& ckpt, const SafetensorsFile& f) {
  std::vector<const TensorInfo*> out;
  for (const auto& t : f.tensors())
    if (ckpt.Contains(t.name) && &ckpt.FileOf(t.name) == &f) out.push_back(&t);
  return out;
}

DenseRef RefOf(const SafetensorsFile& f, const TensorInfo& t) {
  Require2D(f, t);
  return DenseRef{t.name, t.dtype, t.shape[0], t.shape[1], f.Data(t)};
}

void Require2D(const SafetensorsFile& f, const TensorInfo& t) {
  if (t.shape.size() != 2)
    throw Error(f.path().string() + ": tensor " + t.name + " has " +
                std::to_string(t.shape.size()) + " dimensions; a 2:4 weight must be 2-D");
}

void ShardWriter::Borrow(std::string name, DType dtype, std::vector<int64_t> shape,
                         std::span<const std::byte> bytes) {
  tensors_.push_back({std::move(name), dtype, std::move(shape), bytes});
}

void ShardWriter::Own(std::string name, DType dtype, std::vector<int64_t> shape,
                      std::vector<std::byte> bytes) {
  owned_.push_back(std::move(bytes));
  tensors_.push_back({std::move(name), dtype, std::move(shape), owned_.back()});
}

void ShardWriter::Own(std::string name, std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
  std::vector<std::byte> b(bytes.size());
  if (!bytes.empty()) std::memcpy(b.data(), bytes.data(), bytes.size());
  Own(std::move(name), DType::kU8, std::move(shape), std::move(b));
}

void ShardWriter::OwnI64(std::string name, std::vector<int64_t> shape,
                         const std::vector<int64_t>& values) {
  std::vector<std::byte> b(values.size() * sizeof(int64_t));
  std::memcpy(b.data(), values.data(), b.size());  // little-endian hosts only, like safetensors.cc
  Own(std::move(name), DType::kI64, std::move(shape), std::move(b));
}

void ShardWriter::Write(const fs::path& dir, const std::string& file,
                        const std::map<std::string, std::string>& metadata,
                        std::map<std::string, std::string>& weight_map, uint64_t& total) {
  for (const auto& t : tensors_) {
    if (!weight_map.emplace(t.name, file).second)
      throw Error("two output tensors are named " + t.name);
    total += t.bytes.size();
  }
  WriteSafetensors(dir / file, tensors_, metadata);
}

void WriteIndex(const fs::path& dir, const std::map<std::string, std::string>& weight_map,
                uint64_t total_size) {
  nlohmann::json j;
  j["metadata"] = {{"total_size", total_size}};
  j["weight_map"] = weight_map;
  WriteJsonFile(dir / kIndexName, j);
}

std::map<std::string, std::string> OutputMetadata(const SafetensorsFile& in,
                                                  const std::map<std::string, std::string>& extra) {
  auto m = in.metadata();
  m.emplace("format", "pt");
  for (const auto& [k, v] : extra) m[k] = v;
  return m;
}

}  // namespace ps::pack

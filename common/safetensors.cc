#include "common/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/bounded_read.h"
#include "common/error.h"
#include "common/file_util.h"

namespace ps {
namespace {

using nlohmann::json;

// A header larger than this is not a model file (the reference implementation caps it at 100 MB).
constexpr uint64_t kMaxHeader = 100ull << 20;

[[noreturn]] void Fail(const std::filesystem::path& path, const std::string& what) {
  throw Error("safetensors file " + path.string() + ": " + what);
}

uint64_t ReadLE64(const unsigned char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Parses and validates a header against a data section of `data_size` bytes.
std::vector<TensorInfo> ParseHeader(const std::filesystem::path& path, std::string_view text,
                                    uint64_t data_size,
                                    std::map<std::string, std::string>* metadata) {
  json header;
  try {
    header = json::parse(text);
  } catch (const json::parse_error& e) {
    Fail(path, std::string("malformed JSON header: ") + e.what());
  }
  if (!header.is_object()) Fail(path, "header is not a JSON object");
  std::vector<TensorInfo> out;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) Fail(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) Fail(path, "__metadata__." + m.key() + " is not a string");
        if (metadata) (*metadata)[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "': ";
    if (!v.is_object()) Fail(path, where + "entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) Fail(path, where + "missing dtype");
    auto dtype = ParseDType(v["dtype"].get<std::string>());
    if (!dtype) Fail(path, where + "unknown dtype '" + v["dtype"].get<std::string>() + "'");
    if (!v.contains("shape") || !v["shape"].is_array()) Fail(path, where + "missing shape");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() ||
        v["data_offsets"].size() != 2)
      Fail(path, where + "data_offsets must be [begin, end]");
    TensorInfo info;
    info.name = name;
    info.dtype = *dtype;
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        Fail(path, where + "shape entries must be non-negative integers");
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / dim)
        Fail(path, where + "shape is too large");
      numel *= dim;
      info.shape.push_back(static_cast<int64_t>(dim));
    }
    for (const json& o : v["data_offsets"]) {
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        Fail(path, where + "data_offsets must be non-negative integers");
    }
    info.begin = v["data_offsets"][0].get<uint64_t>();
    info.end = v["data_offsets"][1].get<uint64_t>();
    if (info.begin > info.end) Fail(path, where + "data_offsets begin > end");
    if (info.end > data_size)
      Fail(path, where + "data_offsets end " + std::to_string(info.end) +
                     " is past the end of the data (" + std::to_string(data_size) +
                     " bytes; truncated file?)");
    if (info.end - info.begin != numel * DTypeSize(info.dtype))
      Fail(path, where + "data_offsets span " + std::to_string(info.end - info.begin) +
                     " bytes but shape x dtype needs " +
                     std::to_string(numel * DTypeSize(info.dtype)));
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].begin < out[i - 1].end)
      Fail(path, "tensors '" + out[i - 1].name + "' and '" + out[i].name + "' overlap");
  }
  return out;
}

}  // namespace

int64_t TensorInfo::Numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::shared_ptr<const SafetensorsFile> SafetensorsFile::Open(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) Fail(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    Fail(path, std::string("cannot stat: ") + std::strerror(errno));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    Fail(path, "file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  }
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) Fail(path, std::string("cannot mmap: ") + std::strerror(errno));
  std::shared_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  f->map_ = static_cast<const std::byte*>(map);
  f->size_ = size;
  uint64_t header_len = ReadLE64(reinterpret_cast<const unsigned char*>(map));
  if (header_len > size - 8)
    Fail(path, "header length " + std::to_string(header_len) + " is past the end of the file (" +
                   std::to_string(size) + " bytes)");
  if (header_len > kMaxHeader)
    Fail(path, "header length " + std::to_string(header_len) + " is too large");
  f->data_start_ = 8 + header_len;
  std::string_view text(reinterpret_cast<const char*>(f->map_) + 8, header_len);
  f->tensors_ = ParseHeader(path, text, size - f->data_start_, &f->metadata_);
  for (size_t i = 0; i < f->tensors_.size(); ++i) f->index_.emplace(f->tensors_[i].name, i);
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) ::munmap(const_cast<std::byte*>(map_), size_);
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafetensorsFile::Get(std::string_view name) const {
  const TensorInfo* t = Find(name);
  if (!t) Fail(path_, "no tensor named '" + std::string(name) + "'");
  return *t;
}

std::span<const std::byte> SafetensorsFile::Data(const TensorInfo& info) const {
  return {map_ + data_start_ + info.begin, info.end - info.begin};
}

std::vector<TensorInfo> ReadSafetensorsHeader(const std::filesystem::path& path,
                                              std::map<std::string, std::string>* metadata) {
  CheckRegularFile(path, "safetensors file");  // never block on a FIFO or read a device
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(path, "cannot open");
  in.seekg(0, std::ios::end);
  uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (size < 8) Fail(path, "file is shorter than the 8-byte header length");
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  uint64_t header_len = ReadLE64(len_bytes);
  if (header_len > size - 8) Fail(path, "header length is past the end of the file");
  if (header_len > kMaxHeader) Fail(path, "header length is too large");
  std::string text(header_len, '\0');
  in.read(text.data(), static_cast<std::streamsize>(header_len));
  if (!in) Fail(path, "cannot read the header");
  return ParseHeader(path, text, size - 8 - header_len, metadata);
}

void WriteSafetensorsStreamed(const std::filesystem::path& path,
                              const std::vector<TensorHeader>& headers, const TensorBytes& bytes_of,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::vector<uint64_t> sizes;
  for (const auto& t : headers) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error("WriteSafetensors: tensor '" + t.name + "' has a negative dimension");
      numel *= static_cast<uint64_t>(d);
    }
    const uint64_t size = numel * DTypeSize(t.dtype);
    if (header.contains(t.name)) throw Error("WriteSafetensors: duplicate tensor '" + t.name + "'");
    header[t.name] = {{"dtype", std::string(DTypeName(t.dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + size}}};
    offset += size;
    sizes.push_back(size);
  }
  std::string text = header.dump();
  while ((text.size() + 8) % 8 != 0) text.push_back(' ');
  AtomicFileWriter out(path);
  unsigned char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  out.Write(len, 8);
  out.Write(text.data(), text.size());
  for (size_t i = 0; i < headers.size(); ++i) {
    const std::span<const std::byte> bytes = bytes_of(i);
    if (bytes.size() != sizes[i])
      throw Error("WriteSafetensors: tensor '" + headers[i].name + "' has " +
                  std::to_string(bytes.size()) + " bytes, shape x dtype needs " +
                  std::to_string(sizes[i]));
    out.Write(bytes.data(), bytes.size());
  }
  out.Commit();
}

void WriteSafetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<TensorHeader> headers;
  for (const auto& t : tensors) headers.push_back({t.name, t.dtype, t.shape});
  WriteSafetensorsStreamed(
      path, headers, [&](size_t i) { return tensors[i].bytes; }, metadata);
}

Checkpoint Checkpoint::Open(const std::filesystem::path& dir) {
  Checkpoint c;
  c.dir_ = dir;
  auto index_path = dir / "model.safetensors.index.json";
  auto single = dir / "model.safetensors";
  if (std::filesystem::exists(index_path)) {
    nlohmann::json index;
    try {
      index = nlohmann::json::parse(
          ReadRegularFileBounded(index_path, kMaxMetadataBytes, "checkpoint index"));
    } catch (const std::exception& e) {
      throw Error("checkpoint index " + index_path.string() + ": " + e.what());
    }
    if (!index.contains("weight_map") || !index["weight_map"].is_object())
      throw Error("checkpoint index " + index_path.string() + ": no weight_map object");
    std::map<std::string, size_t> file_ids;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        throw Error("checkpoint index " + index_path.string() + ": weight_map." + it.key() +
                    " is not a file name");
      std::string file = it.value().get<std::string>();
      if (file.find('/') != std::string::npos || file == ".." || file.empty())
        throw Error("checkpoint index " + index_path.string() + ": bad shard name '" + file + "'");
      auto [fit, inserted] = file_ids.emplace(file, c.files_.size());
      if (inserted) c.files_.push_back(SafetensorsFile::Open(dir / file));
      if (!c.files_[fit->second]->Find(it.key()))
        throw Error("checkpoint index " + index_path.string() + ": tensor '" + it.key() +
                    "' is not in " + file);
      c.where_.emplace(it.key(), fit->second);
    }
  } else if (std::filesystem::exists(single)) {
    c.files_.push_back(SafetensorsFile::Open(single));
    for (const auto& t : c.files_[0]->tensors()) c.where_.emplace(t.name, 0);
  } else {
    throw Error("checkpoint " + dir.string() +
                ": neither model.safetensors nor model.safetensors.index.json is there");
  }
  return c;
}

std::vector<std::string> Checkpoint::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, _] : where_) names.push_back(name);
  return names;
}

bool Checkpoint::Contains(std::string_view name) const { return where_.find(name) != where_.end(); }

const SafetensorsFile& Checkpoint::FileOf(std::string_view name) const {
  auto it = where_.find(name);
  if (it == where_.end())
    throw Error("checkpoint " + dir_.string() + ": no tensor named '" + std::string(name) + "'");
  return *files_[it->second];
}

const TensorInfo& Checkpoint::Info(std::string_view name) const { return FileOf(name).Get(name); }

std::span<const std::byte> Checkpoint::Data(std::string_view name) const {
  const SafetensorsFile& f = FileOf(name);
  return f.Data(f.Get(name));
}

}  // namespace ps

// Small file helpers: atomic writes (temporary file + fsync + rename) so that a crash never leaves
// a half-written file that looks complete, whole-file reads, and SHA-256 of files and bytes.
#pragma once

#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <span>
#include <string>
#include <system_error>

namespace ps {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);
  ~AtomicFileWriter();  // discards the temporary file unless Commit() ran
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void Write(const void* data, size_t n);
  void Write(std::string_view s) { Write(s.data(), s.size()); }
  // Flushes, fsyncs and renames into place.
  void Commit();

 private:
  std::filesystem::path path_;
  std::filesystem::path tmp_;
  std::FILE* f_ = nullptr;
};

void WriteFileAtomic(const std::filesystem::path& path, std::string_view contents);
std::string ReadFile(const std::filesystem::path& path);
// Lower-case hex SHA-256.
std::string Sha256Hex(std::span<const std::byte> bytes);
std::string Sha256File(const std::filesystem::path& path);

// Removes path and, if it is a directory, everything below it (symbolic links are removed, not
// followed); a missing path is not an error. Returns the first error. Use this instead of
// std::filesystem::remove_all: the CUDA LibTorch 2.x wheels export their own copy of that symbol,
// and a call bound to it crashed psworker (a jump to address 0) on the GPU machine.
std::error_code RemoveTree(const std::filesystem::path& path);

}  // namespace ps

// Reads a file line by line, gzip'd or plain (zlib's gzread passes plain files through), so that
// multi-hundred-megabyte JSON-lines shards (the C4 layout) never sit in memory twice.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace ps {

class LineReader {
 public:
  // Throws ps::Error when the file is missing or unreadable.
  explicit LineReader(const std::filesystem::path& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Next line without its '\n' (a trailing '\r' is kept: callers that care strip it). Returns
  // false at the end. Throws ps::Error on corrupt or truncated gzip data.
  bool Next(std::string& line);
  // Everything not yet returned, as raw bytes.
  std::string ReadRest();
  // 1-based number of the line last returned by Next().
  size_t line_number() const { return line_number_; }
  bool compressed() const { return compressed_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  bool Fill();  // refills buf_; false at end of data

  std::filesystem::path path_;
  void* gz_ = nullptr;  // gzFile, kept opaque so that users need no zlib.h
  bool compressed_ = false;
  std::string buf_;
  size_t pos_ = 0;
  bool eof_ = false;
  size_t line_number_ = 0;
};

// Whole file, gunzipped when it starts with the gzip magic bytes.
std::string ReadMaybeGzipFile(const std::filesystem::path& path);

}  // namespace ps

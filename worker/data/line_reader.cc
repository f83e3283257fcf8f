#include "worker/data/line_reader.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "common/error.h"

namespace ps {
namespace {

constexpr size_t kChunk = 1 << 20;

bool StartsWithGzipMagic(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char m[2] = {0, 0};
  in.read(reinterpret_cast<char*>(m), 2);
  return in.gcount() == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

gzFile AsGz(void* p) { return static_cast<gzFile>(p); }

// Reads up to n bytes; 0 means a clean end of data. A gzip stream that is corrupt, or cut short
// (zlib then reports end-of-file with Z_BUF_ERROR set), throws.
size_t GzReadChecked(void* gz, char* dst, size_t n, const std::filesystem::path& path) {
  int got = gzread(AsGz(gz), dst, static_cast<unsigned>(n));
  int code = Z_OK;
  const char* msg = gzerror(AsGz(gz), &code);
  if (got < 0 || (code != Z_OK && code != Z_STREAM_END))
    throw Error("corrupt or truncated gzip data in " + path.string() + ": " +
                (msg && *msg ? msg : "read error"));
  return static_cast<size_t>(got);
}

}  // namespace

LineReader::LineReader(const std::filesystem::path& path) : path_(path) {
  if (!std::filesystem::exists(path)) throw Error("data file not found: " + path.string());
  if (std::filesystem::is_directory(path))
    throw Error("data file " + path.string() + " is a directory");
  compressed_ = StartsWithGzipMagic(path);
  gz_ = gzopen(path.c_str(), "rb");
  if (!gz_) throw Error("cannot open " + path.string() + ": " + std::strerror(errno));
  gzbuffer(AsGz(gz_), 1 << 17);
}

LineReader::~LineReader() {
  if (gz_) gzclose(AsGz(gz_));
}

bool LineReader::Fill() {
  if (eof_) return false;
  buf_.erase(0, pos_);
  pos_ = 0;
  size_t old = buf_.size();
  buf_.resize(old + kChunk);
  size_t n = GzReadChecked(gz_, buf_.data() + old, kChunk, path_);
  buf_.resize(old + n);
  if (n == 0) eof_ = true;
  return n > 0;
}

bool LineReader::Next(std::string& line) {
  for (;;) {
    size_t nl = buf_.find('\n', pos_);
    if (nl != std::string::npos) {
      line.assign(buf_, pos_, nl - pos_);
      pos_ = nl + 1;
      ++line_number_;
      return true;
    }
    if (!Fill()) {
      if (pos_ < buf_.size()) {  // last line without a newline
        line.assign(buf_, pos_, std::string::npos);
        pos_ = buf_.size();
        ++line_number_;
        return true;
      }
      return false;
    }
  }
}

std::string LineReader::ReadRest() {
  std::string out = buf_.substr(pos_);
  buf_.clear();
  pos_ = 0;
  while (!eof_) {
    size_t old = out.size();
    out.resize(old + kChunk);
    size_t n = GzReadChecked(gz_, out.data() + old, kChunk, path_);
    out.resize(old + n);
    if (n == 0) eof_ = true;
  }
  return out;
}

std::string ReadMaybeGzipFile(const std::filesystem::path& path) {
  LineReader r(path);  // opens and checks the file
  return r.ReadRest();
}

}  // namespace ps

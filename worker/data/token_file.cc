#include "worker/data/token_file.h"

#include <bit>
#include <cstring>
#include <fstream>

#include "common/error.h"
#include "common/file_util.h"

namespace ps {
namespace {

static_assert(std::endian::native == std::endian::little,
              "token files are little-endian; add byte swapping for big-endian hosts");

constexpr int kHeaderInts = 256;
constexpr int64_t kHeaderBytes = kHeaderInts * 4;
constexpr int32_t kMagicU16 = 20240520, kVersionU16 = 1;  // llm.c GPT-2 token files
constexpr int32_t kMagicU32 = 20240801, kVersionU32 = 7;  // llm.c Llama-3 token files

size_t Width(TokenDtype d) { return d == TokenDtype::kUint16 ? 2 : 4; }

// The llm.c header is recognised only when magic, version and the token count all agree with the
// file's size: a raw token file whose first ids happen to spell a magic number would also need
// the third int to equal its exact length, which cannot happen by accident in practice.
std::optional<TokenDtype> DetectLlmcHeader(const std::string& bytes) {
  if (static_cast<int64_t>(bytes.size()) < kHeaderBytes) return std::nullopt;
  int32_t h[3];
  std::memcpy(h, bytes.data(), sizeof(h));
  std::optional<TokenDtype> d;
  if (h[0] == kMagicU16 && h[1] == kVersionU16) d = TokenDtype::kUint16;
  if (h[0] == kMagicU32 && h[1] == kVersionU32) d = TokenDtype::kUint32;
  if (!d) return std::nullopt;
  int64_t body = static_cast<int64_t>(bytes.size()) - kHeaderBytes;
  if (h[2] < 0 || static_cast<int64_t>(h[2]) * static_cast<int64_t>(Width(*d)) != body)
    return std::nullopt;
  return d;
}

}  // namespace

const char* TokenDtypeName(TokenDtype dtype) {
  return dtype == TokenDtype::kUint16 ? "uint16" : "uint32";
}

TokenFile ReadTokenFile(const std::filesystem::path& path, const TokenFileOptions& options) {
  if (!std::filesystem::is_regular_file(path))
    throw Error("token file not found: " + path.string());
  std::string bytes = ReadFile(path);
  TokenFile out;
  size_t offset = 0;
  if (auto d = DetectLlmcHeader(bytes)) {
    out.dtype = *d;
    out.llmc_header = true;
    offset = kHeaderBytes;
  } else {
    int32_t h[2] = {0, 0};
    if (bytes.size() >= sizeof(h)) std::memcpy(h, bytes.data(), sizeof(h));
    if ((h[0] == kMagicU16 && h[1] == kVersionU16) || (h[0] == kMagicU32 && h[1] == kVersionU32))
      throw Error("token file " + path.string() +
                  ": starts with an llm.c magic number but its header does not match the file "
                  "size (truncated?)");
    if (!options.dtype)
      throw Error("token file " + path.string() +
                  " has no llm.c header; say whether its ids are uint16 or uint32");
    out.dtype = *options.dtype;
  }
  const size_t w = Width(out.dtype);
  const size_t body = bytes.size() - offset;
  if (body % w != 0)
    throw Error("token file " + path.string() + ": " + std::to_string(body) +
                " bytes of ids is not a multiple of " + std::to_string(w) + " (" +
                TokenDtypeName(out.dtype) + ")");
  const size_t n = body / w;
  out.tokens.resize(n);
  const char* p = bytes.data() + offset;
  for (size_t i = 0; i < n; ++i) {
    uint32_t id;
    if (w == 2) {
      uint16_t v;
      std::memcpy(&v, p + 2 * i, 2);
      id = v;
    } else {
      std::memcpy(&id, p + 4 * i, 4);
    }
    if (id > static_cast<uint32_t>(INT32_MAX))
      throw Error("token file " + path.string() + ": id " + std::to_string(id) + " at position " +
                  std::to_string(i) + " does not fit int32");
    if (options.vocab_size > 0 && static_cast<int64_t>(id) >= options.vocab_size)
      throw Error("token file " + path.string() + ": id " + std::to_string(id) + " at position " +
                  std::to_string(i) + " is >= vocab size " + std::to_string(options.vocab_size));
    out.tokens[i] = static_cast<int32_t>(id);
  }
  return out;
}

void WriteTokenFile(const std::filesystem::path& path, const std::vector<int32_t>& tokens,
                    TokenDtype dtype, bool llmc_header) {
  const size_t w = Width(dtype);
  std::string bytes;
  if (llmc_header) {
    if (tokens.size() > static_cast<size_t>(INT32_MAX))
      throw Error("too many tokens for an llm.c header: " + std::to_string(tokens.size()));
    int32_t h[kHeaderInts] = {};
    h[0] = dtype == TokenDtype::kUint16 ? kMagicU16 : kMagicU32;
    h[1] = dtype == TokenDtype::kUint16 ? kVersionU16 : kVersionU32;
    h[2] = static_cast<int32_t>(tokens.size());
    bytes.append(reinterpret_cast<const char*>(h), sizeof(h));
  }
  size_t offset = bytes.size();
  bytes.resize(offset + w * tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    int32_t t = tokens[i];
    if (t < 0 || (w == 2 && t > 0xFFFF))
      throw Error("token id " + std::to_string(t) + " does not fit " + TokenDtypeName(dtype));
    if (w == 2) {
      uint16_t v = static_cast<uint16_t>(t);
      std::memcpy(bytes.data() + offset + 2 * i, &v, 2);
    } else {
      uint32_t v = static_cast<uint32_t>(t);
      std::memcpy(bytes.data() + offset + 4 * i, &v, 4);
    }
  }
  WriteFileAtomic(path, bytes);
}

}  // namespace ps

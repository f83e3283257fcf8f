// Pre-tokenized token files: a flat array of little-endian unsigned token ids (the nanoGPT
// layout: uint16 for vocabularies up to 65,536, uint32 above), optionally behind llm.c's header
// of 256 int32 values (magic, version, token count; magic 20240520 version 1 = uint16 ids,
// the GPT-2 files; magic 20240801 version 7 = uint32 ids, the Llama-3 files).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ps {

enum class TokenDtype { kUint16, kUint32 };

struct TokenFileOptions {
  // Width of each id in a headerless file; required for those (a raw file does not say). Ignored
  // when the llm.c header is present, which names the width itself.
  std::optional<TokenDtype> dtype;
  // When > 0, every id must be < vocab_size.
  int64_t vocab_size = 0;
};

struct TokenFile {
  std::vector<int32_t> tokens;
  TokenDtype dtype = TokenDtype::kUint16;
  bool llmc_header = false;
};

// Throws ps::Error for a missing file, a byte count that is not a whole number of ids, a header
// whose token count disagrees with the file size, ids >= vocab_size, ids above INT32_MAX, or a
// headerless file read without `dtype`.
TokenFile ReadTokenFile(const std::filesystem::path& path, const TokenFileOptions& options = {});

// Writes ids in the given width (atomically); with `llmc_header` the llm.c header comes first.
// Throws ps::Error when an id does not fit the width.
void WriteTokenFile(const std::filesystem::path& path, const std::vector<int32_t>& tokens,
                    TokenDtype dtype, bool llmc_header);

const char* TokenDtypeName(TokenDtype dtype);

}  // namespace ps

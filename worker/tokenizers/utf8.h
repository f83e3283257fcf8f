// Small UTF-8 helpers for the tokenizers: decoding one code point (invalid bytes are reported, not
// replaced, so byte-exact round trips stay possible), encoding, and Unicode White_Space, which is
// what `\s` means in the Oniguruma patterns of Hugging Face tokenizer.json files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ps::utf8 {

// Decodes the code point at s[pos]. Returns its length in bytes (1..4) and sets *cp; for an
// invalid or truncated sequence returns 1 and sets *cp = kInvalid.
inline constexpr uint32_t kInvalid = 0xFFFFFFFF;
size_t Decode(std::string_view s, size_t pos, uint32_t* cp);

void Append(std::string& out, uint32_t cp);

// Unicode White_Space (25 code points): U+0009..U+000D, U+0020, U+0085, U+00A0, U+1680,
// U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
bool IsWhiteSpace(uint32_t cp);

// The same set as RE2 character-class ranges, without brackets (to splice into a class), and
// its complement over all code points.
extern const char* const kWhiteSpaceRanges;
extern const char* const kNonWhiteSpaceRanges;

// Start of the last code point in s[begin, end) (end > begin), stepping back over continuation
// bytes; never before begin.
size_t LastCharStart(std::string_view s, size_t begin, size_t end);

}  // namespace ps::utf8

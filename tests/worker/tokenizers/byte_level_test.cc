#include "worker/tokenizers/byte_level.h"

#include <gtest/gtest.h>

#include <set>

#include "worker/tokenizers/utf8.h"

namespace ps {
namespace {

TEST(ByteLevel, KnownCharacters) {
  const auto& t = ByteToUnicode();
  EXPECT_EQ(t[' '], 0x120u);   // 'Ġ'
  EXPECT_EQ(t['\n'], 0x10Au);  // 'Ċ'
  EXPECT_EQ(t['\t'], 0x109u);  // 'ĉ'
  EXPECT_EQ(t[0], 0x100u);     // 'Ā'
  EXPECT_EQ(t['!'], static_cast<uint32_t>('!'));
  EXPECT_EQ(t['~'], static_cast<uint32_t>('~'));
  EXPECT_EQ(t[0x7F], 0x121u);  // first byte after the 33 control/space bytes
  EXPECT_EQ(t[0x80], 0x122u);  // 'Ģ'
  EXPECT_EQ(t[0x98], 0x13Au);  // 'ĺ'
  EXPECT_EQ(t[0x9F], 0x141u);  // 'Ł'
  EXPECT_EQ(t[0xA0], 0x142u);
  EXPECT_EQ(t[0xA1], 0xA1u);
  EXPECT_EQ(t[0xAD], 0x143u);  // soft hyphen, the last remapped byte
  EXPECT_EQ(t[0xF0], 0xF0u);   // 'ð'
  std::set<uint32_t> distinct(t.begin(), t.end());
  EXPECT_EQ(distinct.size(), 256u);
  // The grinning-face emoji as GPT-2's vocabulary writes it.
  EXPECT_EQ(ByteLevelEncode("\U0001F600"), "\u00f0\u0141\u013a\u0122");
  EXPECT_EQ(ByteLevelEncode(" the"), "\u0120the");
}

TEST(ByteLevel, RoundTripAndForeignCharacters) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(ByteLevelDecode(ByteLevelEncode(all)), all);
  EXPECT_FALSE(ByteLevelDecode("a b").has_value());     // plain space is not in the table
  EXPECT_FALSE(ByteLevelDecode("\u4e2d").has_value());  // nor is CJK
  EXPECT_EQ(ByteLevelDecode("<|endoftext|>"), "<|endoftext|>");
}

TEST(Utf8, DecodeRejectsInvalid) {
  uint32_t cp;
  EXPECT_EQ(utf8::Decode("\xC3\xA9", 0, &cp), 2u);
  EXPECT_EQ(cp, 0xE9u);
  EXPECT_EQ(utf8::Decode("\xF0\x9F\x98\x80", 0, &cp), 4u);
  EXPECT_EQ(cp, 0x1F600u);
  for (std::string bad : {"\x80", "\xC3", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xFF"}) {
    EXPECT_EQ(utf8::Decode(bad, 0, &cp), 1u) << bad;
    EXPECT_EQ(cp, utf8::kInvalid);
  }
  for (uint32_t c : {0x9u, 0x20u, 0x85u, 0xA0u, 0x1680u, 0x2000u, 0x200Au, 0x2028u, 0x2029u,
                     0x202Fu, 0x205Fu, 0x3000u})
    EXPECT_TRUE(utf8::IsWhiteSpace(c)) << c;
  for (uint32_t c : {0x8u, 0x21u, 0x200Bu, 0x180Eu, 0xFEFFu})
    EXPECT_FALSE(utf8::IsWhiteSpace(c)) << c;
  std::string s;
  for (uint32_t c : {0x41u, 0xE9u, 0x4E2Du, 0x1F600u}) utf8::Append(s, c);
  EXPECT_EQ(s, "A\u00e9\u4e2d\U0001F600");
}

}  // namespace
}  // namespace ps

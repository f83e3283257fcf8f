#include "worker/data/token_file.h"

#include <gtest/gtest.h>

#include <cstring>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/testing/error_of.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

using testing::ErrorOf;
using testing::TempDir;

TEST(TokenFile, RawRoundTripBothWidths) {
  TempDir dir;
  std::vector<int32_t> ids = {0, 1, 50256, 65535, 7, 300};
  WriteTokenFile(dir / "a.u16", ids, TokenDtype::kUint16, false);
  EXPECT_EQ(std::filesystem::file_size(dir / "a.u16"), 12u);
  // Little-endian on disk: 50256 = 0xC450 -> bytes 50 C4.
  std::string bytes = ReadFile(dir / "a.u16");
  EXPECT_EQ(static_cast<unsigned char>(bytes[4]), 0x50);
  EXPECT_EQ(static_cast<unsigned char>(bytes[5]), 0xC4);
  auto f = ReadTokenFile(dir / "a.u16", {.dtype = TokenDtype::kUint16});
  EXPECT_EQ(f.tokens, ids);
  EXPECT_FALSE(f.llmc_header);

  std::vector<int32_t> big = {128000, 5, 151643, 0};
  WriteTokenFile(dir / "b.u32", big, TokenDtype::kUint32, false);
  EXPECT_EQ(ReadTokenFile(dir / "b.u32", {.dtype = TokenDtype::kUint32}).tokens, big);
  // The same bytes read as uint16 are a different, valid stream: width must be stated.
  EXPECT_EQ(ReadTokenFile(dir / "b.u32", {.dtype = TokenDtype::kUint16}).tokens.size(), 8u);
}

TEST(TokenFile, LlmcHeaderDetected) {
  TempDir dir;
  std::vector<int32_t> ids = {50256, 15496, 11, 995};
  WriteTokenFile(dir / "gpt2.bin", ids, TokenDtype::kUint16, true);
  EXPECT_EQ(std::filesystem::file_size(dir / "gpt2.bin"), 1024u + 8u);
  auto f = ReadTokenFile(dir / "gpt2.bin");  // no dtype needed: the header says
  EXPECT_TRUE(f.llmc_header);
  EXPECT_EQ(f.dtype, TokenDtype::kUint16);
  EXPECT_EQ(f.tokens, ids);
  std::string bytes = ReadFile(dir / "gpt2.bin");
  int32_t h[3];
  std::memcpy(h, bytes.data(), sizeof(h));
  EXPECT_EQ(h[0], 20240520);
  EXPECT_EQ(h[1], 1);
  EXPECT_EQ(h[2], 4);

  std::vector<int32_t> l3 = {128000, 9906, 1917, 128001};
  WriteTokenFile(dir / "llama3.bin", l3, TokenDtype::kUint32, true);
  f = ReadTokenFile(dir / "llama3.bin", {.dtype = TokenDtype::kUint16});  // header wins
  EXPECT_TRUE(f.llmc_header);
  EXPECT_EQ(f.dtype, TokenDtype::kUint32);
  EXPECT_EQ(f.tokens, l3);

  // Empty token list with a header.
  WriteTokenFile(dir / "empty.bin", {}, TokenDtype::kUint16, true);
  EXPECT_TRUE(ReadTokenFile(dir / "empty.bin").tokens.empty());
}

TEST(TokenFile, HeaderLookalikeWithoutMatchingCountIsRaw) {
  TempDir dir;
  // A raw uint32 file whose first ids spell the llm.c magic and version but whose count does not
  // match: it is a truncated llm.c file or a very odd raw one; we refuse rather than guess.
  std::vector<int32_t> ids(300, 3);
  ids[0] = 20240801;
  ids[1] = 7;
  ids[2] = 5;
  WriteTokenFile(dir / "odd.bin", ids, TokenDtype::kUint32, false);
  std::string e = ErrorOf([&] { ReadTokenFile(dir / "odd.bin", {.dtype = TokenDtype::kUint32}); });
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  // Magic alone (without the version) is just data.
  ids[1] = 8;
  WriteTokenFile(dir / "data.bin", ids, TokenDtype::kUint32, false);
  EXPECT_EQ(ReadTokenFile(dir / "data.bin", {.dtype = TokenDtype::kUint32}).tokens, ids);
}

TEST(TokenFile, Errors) {
  TempDir dir;
  EXPECT_NE(ErrorOf([&] {
              ReadTokenFile(dir / "missing.bin", {.dtype = TokenDtype::kUint16});
            }).find("not found"),
            std::string::npos);
  WriteFileAtomic(dir / "odd.u16", std::string("\x01\x00\x02", 3));
  std::string e = ErrorOf([&] { ReadTokenFile(dir / "odd.u16", {.dtype = TokenDtype::kUint16}); });
  EXPECT_NE(e.find("not a multiple of 2"), std::string::npos) << e;
  WriteFileAtomic(dir / "six.u32", std::string(6, '\0'));
  e = ErrorOf([&] { ReadTokenFile(dir / "six.u32", {.dtype = TokenDtype::kUint32}); });
  EXPECT_NE(e.find("not a multiple of 4"), std::string::npos) << e;
  e = ErrorOf([&] { ReadTokenFile(dir / "six.u32"); });
  EXPECT_NE(e.find("uint16 or uint32"), std::string::npos) << e;

  WriteTokenFile(dir / "v.u16", {1, 2, 8191, 8192}, TokenDtype::kUint16, false);
  e = ErrorOf(
      [&] { ReadTokenFile(dir / "v.u16", {.dtype = TokenDtype::kUint16, .vocab_size = 8192}); });
  EXPECT_NE(e.find("8192 at position 3"), std::string::npos) << e;
  EXPECT_EQ(ReadTokenFile(dir / "v.u16", {.dtype = TokenDtype::kUint16, .vocab_size = 8193})
                .tokens.size(),
            4u);

  WriteFileAtomic(dir / "neg.u32", std::string("\xff\xff\xff\xff", 4));
  e = ErrorOf([&] { ReadTokenFile(dir / "neg.u32", {.dtype = TokenDtype::kUint32}); });
  EXPECT_NE(e.find("does not fit int32"), std::string::npos) << e;

  EXPECT_FALSE(
      ErrorOf([&] { WriteTokenFile(dir / "w.u16", {70000}, TokenDtype::kUint16, false); }).empty());
  EXPECT_FALSE(
      ErrorOf([&] { WriteTokenFile(dir / "w.u32", {-1}, TokenDtype::kUint32, false); }).empty());
}

}  // namespace
}  // namespace ps

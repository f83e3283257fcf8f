#include "worker/data/documents.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/testing/error_of.h"
#include "tests/testing/temp_dir.h"
#include "worker/data/line_reader.h"

namespace ps {
namespace {

using testing::ErrorOf;
using testing::TempDir;

void WriteGzip(const std::filesystem::path& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, data.data(), static_cast<unsigned>(data.size())),
            static_cast<int>(data.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

const std::string kJsonl =
    "{\"text\": \"first doc\\nline two\", \"url\": \"x\"}\n"
    "\n"
    "{\"text\": \"caf\\u00e9 \\ud83d\\ude00\"}\r\n"
    "{\"text\": \"\"}\n"
    "{\"text\": \"no newline at end\"}";

TEST(Documents, JsonLinesPlainAndGzipAgree) {
  TempDir dir;
  WriteFileAtomic(dir / "a.jsonl", kJsonl);
  WriteGzip(dir / "a.json.gz", kJsonl);
  auto plain = ReadDocuments(dir / "a.jsonl");
  auto gz = ReadDocuments(dir / "a.json.gz");
  ASSERT_EQ(plain.size(), 4u);
  EXPECT_EQ(plain[0], "first doc\nline two");
  EXPECT_EQ(plain[1], "caf\xc3\xa9 \xf0\x9f\x98\x80");
  EXPECT_EQ(plain[2], "");
  EXPECT_EQ(plain[3], "no newline at end");
  EXPECT_EQ(plain, gz);
  DocumentReadOptions o;
  o.max_documents = 2;
  EXPECT_EQ(ReadDocuments(dir / "a.json.gz", o).size(), 2u);
}

TEST(Documents, CustomTextKey) {
  TempDir dir;
  WriteFileAtomic(dir / "k.jsonl", "{\"content\": \"abc\"}\n");
  DocumentReadOptions o;
  o.text_key = "content";
  EXPECT_EQ(ReadDocuments(dir / "k.jsonl", o), std::vector<std::string>{"abc"});
  EXPECT_NE(ErrorOf([&] { ReadDocuments(dir / "k.jsonl"); }).find("no \"text\" field"),
            std::string::npos);
}

TEST(Documents, BadLinesNameFileAndLine) {
  TempDir dir;
  WriteFileAtomic(dir / "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated}\n");
  std::string e = ErrorOf([&] { ReadDocuments(dir / "bad.jsonl"); });
  EXPECT_NE(e.find("bad.jsonl:2"), std::string::npos) << e;
  EXPECT_NE(e.find("not valid JSON"), std::string::npos) << e;

  WriteFileAtomic(dir / "arr.jsonl", "{\"text\": \"ok\"}\n\n[1, 2]\n");
  e = ErrorOf([&] { ReadDocuments(dir / "arr.jsonl"); });
  EXPECT_NE(e.find("arr.jsonl:3"), std::string::npos) << e;

  WriteFileAtomic(dir / "num.jsonl", "{\"text\": 5}\n");
  e = ErrorOf([&] { ReadDocuments(dir / "num.jsonl"); });
  EXPECT_NE(e.find("num.jsonl:1"), std::string::npos) << e;
  EXPECT_NE(e.find("not a string"), std::string::npos) << e;

  WriteGzip(dir / "bad.jsonl.gz", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{oops}\n");
  e = ErrorOf([&] { ReadDocuments(dir / "bad.jsonl.gz"); });
  EXPECT_NE(e.find("bad.jsonl.gz:3"), std::string::npos) << e;
}

TEST(Documents, MissingFile) {
  TempDir dir;
  std::string e = ErrorOf([&] { ReadDocuments(dir / "nope.jsonl"); });
  EXPECT_NE(e.find("not found"), std::string::npos) << e;
  EXPECT_NE(e.find("nope.jsonl"), std::string::npos) << e;
  EXPECT_FALSE(ErrorOf([&] { ReadTextFile(dir / "nope.txt"); }).empty());
  EXPECT_FALSE(ErrorOf([&] { DescribeDataFile(dir / "nope.txt"); }).empty());
}

TEST(Documents, CorruptAndTruncatedGzip) {
  TempDir dir;
  std::string big;
  for (int i = 0; i < 20000; ++i)
    big += "{\"text\": \"document number " + std::to_string(i) + "\"}\n";
  WriteGzip(dir / "good.jsonl.gz", big);
  std::string bytes = ReadFile(dir / "good.jsonl.gz");
  ASSERT_EQ(ReadDocuments(dir / "good.jsonl.gz").size(), 20000u);

  WriteFileAtomic(dir / "cut.jsonl.gz", bytes.substr(0, bytes.size() / 2));
  std::string e = ErrorOf([&] { ReadDocuments(dir / "cut.jsonl.gz"); });
  EXPECT_NE(e.find("gzip"), std::string::npos) << e;
  EXPECT_NE(e.find("cut.jsonl.gz"), std::string::npos) << e;

  std::string garbled = bytes;
  for (size_t i = 20; i < 60 && i < garbled.size(); ++i) garbled[i] = static_cast<char>(i * 37);
  WriteFileAtomic(dir / "garbled.jsonl.gz", garbled);
  e = ErrorOf([&] { ReadDocuments(dir / "garbled.jsonl.gz"); });
  EXPECT_NE(e.find("gzip"), std::string::npos) << e;

  // Magic bytes and nothing else.
  WriteFileAtomic(dir / "magic.txt", std::string("\x1f\x8b", 2));
  e = ErrorOf([&] { ReadTextFile(dir / "magic.txt"); });
  EXPECT_NE(e.find("gzip"), std::string::npos) << e;
}

TEST(Documents, TextFilesWholeAndBlankLineSplit) {
  TempDir dir;
  std::string text = "para one\nstill one\n\n\n  \npara two\r\n\npara three\n";
  WriteFileAtomic(dir / "t.txt", text);
  WriteGzip(dir / "t.txt.gz", text);
  EXPECT_EQ(ReadDocuments(dir / "t.txt"), std::vector<std::string>{text});
  EXPECT_EQ(ReadTextFile(dir / "t.txt.gz"), text);  // exact bytes, trailing newline included
  DocumentReadOptions o;
  o.text_split = TextSplit::kBlankLines;
  EXPECT_EQ(ReadDocuments(dir / "t.txt", o),
            (std::vector<std::string>{"para one\nstill one", "para two\r", "para three"}));
  WriteFileAtomic(dir / "empty.txt", "");
  EXPECT_EQ(ReadDocuments(dir / "empty.txt"), std::vector<std::string>{""});
  EXPECT_TRUE(ReadDocuments(dir / "empty.txt", o).empty());
}

TEST(Documents, LineReaderLongLinesAcrossChunks) {
  TempDir dir;
  std::string a(3'000'000, 'a'), b(5, 'b');
  WriteGzip(dir / "long.gz", a + "\n" + b + "\n");
  LineReader r(dir / "long.gz");
  EXPECT_TRUE(r.compressed());
  std::string line;
  ASSERT_TRUE(r.Next(line));
  EXPECT_EQ(line, a);
  ASSERT_TRUE(r.Next(line));
  EXPECT_EQ(line, b);
  EXPECT_EQ(r.line_number(), 2u);
  EXPECT_FALSE(r.Next(line));
}

TEST(Documents, PathKinds) {
  EXPECT_TRUE(IsJsonLinesPath("c4-train.00000-of-01024.json.gz"));
  EXPECT_TRUE(IsJsonLinesPath("x/code-calib.jsonl.gz"));
  EXPECT_TRUE(IsJsonLinesPath("a.ndjson"));
  EXPECT_FALSE(IsJsonLinesPath("code-eval.txt"));
  EXPECT_FALSE(IsJsonLinesPath("notes.txt.gz"));
}

TEST(Documents, SharedCalibrationSetAndHash) {
  auto path = std::filesystem::path(PS_SHARED_DATA) / "code-calib.jsonl.gz";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no shared data at " << path;
  auto docs = ReadDocuments(path);
  EXPECT_EQ(docs.size(), 540u);
  EXPECT_NE(docs[0].find("import"), std::string::npos);
  auto info = DescribeDataFile(path);
  EXPECT_EQ(info.sha256, "1e40848af02dec7b547fd423377ee71ffef5e09337bd2ef61abf52d78e4d3046");
  EXPECT_EQ(info.bytes, 1875642u);
}

}  // namespace
}  // namespace ps

#include <gtest/gtest.h>

#include <filesystem>

#include "common/file_util.h"
#include "worker/data/line_reader.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

const std::filesystem::path kData = std::filesystem::path(PS_SHARED_DATA);
const std::filesystem::path kModel = kData / "codelm-19m";

TEST(SentencePiece, DefaultModelSpecialTokens) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no shared data at " << kModel;
  auto tok = LoadTokenizer(kModel);
  EXPECT_EQ(tok->vocab_size(), 8192);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_TRUE(tok->add_bos());   // tokenizer_config.json: add_bos_token true
  EXPECT_FALSE(tok->add_eos());  // add_eos_token false
  EXPECT_EQ(tok->TokenToId("<s>"), 1);
  EXPECT_EQ(tok->TokenToId("</s>"), 2);
  EXPECT_FALSE(tok->TokenToId("definitely not a piece").has_value());
  EXPECT_EQ(tok->IdToToken(1), "<s>");
  EXPECT_THROW(tok->IdToToken(8192), Error);
  EXPECT_THROW(tok->Decode({8192}), Error);
  auto with_bos = tok->EncodeForModel("def f(x):\n    return x\n");
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos[0], 1);
  EXPECT_EQ(std::vector<int32_t>(with_bos.begin() + 1, with_bos.end()),
            tok->Encode("def f(x):\n    return x\n"));
}

// The whole evaluation text round-trips exactly (byte fallback covers every byte).
TEST(SentencePiece, DefaultModelRoundTripsWholeEvalText) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no shared data at " << kModel;
  auto tok = LoadTokenizer(kModel);
  std::string text = ReadFile(kData / "code-eval.txt");
  auto ids = tok->Encode(text);
  // 2,159 windows of 512 with BOS in front (README): 1,105,408 <= 1 + n < 1,105,920.
  EXPECT_GE(ids.size() + 1, 2159u * 512u);
  EXPECT_LT(ids.size() + 1, 2160u * 512u);
  EXPECT_EQ(tok->Decode(ids), text);
}

TEST(SentencePiece, DefaultModelRoundTripsWikitext) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no shared data at " << kModel;
  auto tok = LoadTokenizer(kModel);
  std::string text = ReadFile(kData / "wikitext-2" / "test.txt");
  ASSERT_GT(text.size(), 1'000'000u);
  EXPECT_EQ(tok->Decode(tok->Encode(text)), text);
}

TEST(SentencePiece, DefaultModelRoundTripsCalibrationDocuments) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no shared data at " << kModel;
  auto tok = LoadTokenizer(kModel);
  std::string all = ReadMaybeGzipFile(kData / "code-calib.jsonl.gz");
  std::string sample = all.substr(0, 300000);  // JSON text with escapes: tricky bytes
  EXPECT_EQ(tok->Decode(tok->Encode(sample)), sample);
}

}  // namespace
}  // namespace ps

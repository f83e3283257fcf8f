#include <gtest/gtest.h>

#include <filesystem>

#include "common/file_util.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

const std::filesystem::path kModel = std::filesystem::path(PS_SHARED_DATA) / "codelm-19m";

TEST(SentencePiece, DefaultModelRoundTripsEvalText) {
  if (!std::filesystem::exists(kModel)) GTEST_SKIP() << "no shared data at " << kModel;
  auto tok = LoadTokenizer(kModel);
  EXPECT_EQ(tok->vocab_size(), 8192);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  std::string text = ReadFile(std::filesystem::path(PS_SHARED_DATA) / "code-eval.txt");
  text.resize(200000);
  auto ids = tok->Encode(text);
  EXPECT_GT(ids.size(), 10000u);
  EXPECT_EQ(tok->Decode(ids), text);
  auto with_bos = tok->EncodeForModel("def f(x):\n    return x\n");
  ASSERT_FALSE(with_bos.empty());
  EXPECT_EQ(with_bos[0], 1);
}

}  // namespace
}  // namespace ps

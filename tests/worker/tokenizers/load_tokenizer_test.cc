// LoadTokenizer's choice between tokenizer.json and tokenizer.model, and BOS/EOS from
// tokenizer_config.json / config.json.
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/tokenizers/test_tokenizer_json.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

using testing::Style;
using testing::TempDir;
using Ids = std::vector<int32_t>;

const std::filesystem::path kSpModel =
    std::filesystem::path(PS_SHARED_DATA) / "codelm-19m" / "tokenizer.model";

void WriteJson(const std::filesystem::path& p, const nlohmann::json& j) {
  WriteFileAtomic(p, j.dump(1));
}

TEST(LoadTokenizer, PicksTokenizerJsonWhenSupported) {
  TempDir dir;
  WriteJson(dir / "tokenizer.json", testing::MakeTokenizerJson(Style::kLlama3));
  auto tok = LoadTokenizer(dir.path());
  EXPECT_EQ(tok->vocab_size(), 283);
  EXPECT_EQ(tok->EncodeForModel(" the"), (Ids{testing::kBeginOfText, 258}));
}

TEST(LoadTokenizer, FallsBackToSentencePieceForUnsupportedJson) {
  if (!std::filesystem::exists(kSpModel)) GTEST_SKIP() << "no shared data";
  TempDir dir;
  auto j = testing::MakeTokenizerJson(Style::kGpt2);
  j["pre_tokenizer"] = nullptr;  // SentencePiece-style tokenizer.json, as Llama-2 ships
  j["decoder"] = {{"type", "Sequence"}, {"decoders", nlohmann::json::array()}};
  WriteJson(dir / "tokenizer.json", j);
  std::filesystem::copy_file(kSpModel, dir / "tokenizer.model");
  auto tok = LoadTokenizer(dir.path());
  EXPECT_EQ(tok->vocab_size(), 8192);
  EXPECT_TRUE(tok->add_bos());  // LlamaTokenizer's default
  // Without tokenizer.model the reason is reported.
  std::filesystem::remove(dir / "tokenizer.model");
  try {
    LoadTokenizer(dir.path());
    ADD_FAILURE() << "loaded an unsupported tokenizer.json";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no tokenizer.model"), std::string::npos) << e.what();
  }
}

TEST(LoadTokenizer, MalformedJsonIsAnErrorNotAFallback) {
  TempDir dir;
  WriteFileAtomic(dir / "tokenizer.json", "{\"model\": ");
  EXPECT_THROW(LoadTokenizer(dir.path()), Error);
  EXPECT_THROW(LoadTokenizer(dir / "missing"), Error);
  TempDir empty;
  EXPECT_THROW(LoadTokenizer(empty.path()), Error);
}

TEST(LoadTokenizer, TokenizerConfigOverridesTemplate) {
  TempDir dir;
  WriteJson(dir / "tokenizer.json", testing::MakeTokenizerJson(Style::kLlama3));
  WriteJson(dir / "tokenizer_config.json",
            {{"add_bos_token", false},
             {"add_eos_token", true},
             {"bos_token", "<|begin_of_text|>"},
             {"eos_token", {{"content", "<|endoftext|>"}, {"lstrip", false}}}});
  auto tok = LoadTokenizer(dir.path());
  EXPECT_FALSE(tok->add_bos());
  EXPECT_TRUE(tok->add_eos());
  EXPECT_EQ(tok->bos_id(), testing::kBeginOfText);
  EXPECT_EQ(tok->eos_id(), testing::kEndOfText);
  EXPECT_EQ(tok->EncodeForModel(" the"), (Ids{258, testing::kEndOfText}));
}

TEST(LoadTokenizer, ConfigJsonFillsGapsAndListsOfEos) {
  TempDir dir;
  WriteJson(dir / "tokenizer.json", testing::MakeTokenizerJson(Style::kGpt2));
  // GPT-2 style: no template, so nothing added; ids from config.json (EOS as a list).
  WriteJson(dir / "config.json",
            {{"bos_token_id", testing::kEndOfText},
             {"eos_token_id", nlohmann::json::array({testing::kUser, testing::kEndOfText})}});
  auto tok = LoadTokenizer(dir.path());
  EXPECT_EQ(tok->bos_id(), testing::kEndOfText);
  EXPECT_EQ(tok->eos_id(), testing::kUser);
  EXPECT_FALSE(tok->add_bos());
  EXPECT_EQ(tok->EncodeForModel(" the"), (Ids{258}));
  // tokenizer_config.json's add_bos_token turns BOS on with config.json's id.
  WriteJson(dir / "tokenizer_config.json", {{"add_bos_token", true}});
  EXPECT_EQ(LoadTokenizer(dir.path())->EncodeForModel(" the"), (Ids{testing::kEndOfText, 258}));
  // A null bos_token with add_bos_token true is a contradiction.
  WriteJson(dir / "tokenizer_config.json", {{"add_bos_token", true}, {"bos_token", nullptr}});
  EXPECT_THROW(LoadTokenizer(dir.path()), Error);
  // Unknown token names are reported.
  WriteJson(dir / "tokenizer_config.json", {{"eos_token", "<|nope|>"}});
  try {
    LoadTokenizer(dir.path());
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("<|nope|>"), std::string::npos) << e.what();
  }
  WriteJson(dir / "tokenizer_config.json", {{"add_bos_token", "yes"}});
  EXPECT_THROW(LoadTokenizer(dir.path()), Error);
  WriteFileAtomic(dir / "tokenizer_config.json", "{");
  EXPECT_THROW(LoadTokenizer(dir.path()), Error);
}

TEST(LoadTokenizer, SentencePieceHonoursTokenizerConfig) {
  if (!std::filesystem::exists(kSpModel)) GTEST_SKIP() << "no shared data";
  TempDir dir;
  std::filesystem::copy_file(kSpModel, dir / "tokenizer.model");
  EXPECT_TRUE(LoadTokenizer(dir.path())->add_bos());
  WriteJson(dir / "tokenizer_config.json", {{"add_bos_token", false}, {"add_eos_token", true}});
  auto tok = LoadTokenizer(dir.path());
  EXPECT_FALSE(tok->add_bos());
  auto ids = tok->EncodeForModel("x = 1\n");
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
}

}  // namespace
}  // namespace ps

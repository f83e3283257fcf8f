// Byte-level BPE from tokenizer.json. Expected ids are derived by hand from the test vocabulary
// (test_tokenizer_json.h: byte b has id b; merge r makes id 256 + r), following the pipeline:
// added tokens, normalizer, pre-tokenizer regex, then merges lowest rank first.
#include "worker/tokenizers/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/testing/temp_dir.h"
#include "tests/worker/tokenizers/test_tokenizer_json.h"
#include "worker/tokenizers/normalizer.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

using testing::Style;
using Ids = std::vector<int32_t>;

std::unique_ptr<Tokenizer> Make(Style style) {
  return ParseTokenizerJson(testing::MakeTokenizerJson(style).dump(), "test tokenizer.json");
}

std::unique_ptr<Tokenizer> MakeFrom(const nlohmann::json& j) {
  return ParseTokenizerJson(j.dump(), "test tokenizer.json");
}

TEST(BpeTokenizer, Gpt2HandDerivedIds) {
  auto tok = Make(Style::kGpt2);
  EXPECT_EQ(tok->vocab_size(), 283);
  // "the": t,h,e -> (h,e) rank 1 -> [t, he]; "t"+"he" is no merge.
  EXPECT_EQ(tok->Encode("the"), (Ids{116, 257}));
  // " the": (Ġ,t) rank 0 first, then (h,e) rank 1, then (Ġt,he) rank 2.
  EXPECT_EQ(tok->Encode(" the"), (Ids{258}));
  // "in the  inn": pieces "in", " the", " ", " inn"; " inn" -> (i,n) -> (Ġ,in) -> [Ġin, n].
  EXPECT_EQ(tok->Encode("in the  inn"), (Ids{259, 258, 32, 268, 110}));
  // Whitespace runs: "a", "   " (-> [ĠĠ, Ġ]), " b" (no merge for Ġb).
  EXPECT_EQ(tok->Encode("a    b"), (Ids{97, 260, 32, 32, 98}));
  // Trailing run of four stays whole: (Ġ,Ġ) at 0 and 2, then (ĠĠ,ĠĠ).
  EXPECT_EQ(tok->Encode("a    "), (Ids{97, 263}));
  // GPT-2 splits "\n\n" before a letter into two pieces, so the "\n\n" merge cannot apply.
  EXPECT_EQ(tok->Encode("x\n\ny"), (Ids{120, 10, 10, 121}));
  // Digits in one piece: "1212" -> [12, 12].
  EXPECT_EQ(tok->Encode("1212"), (Ids{261, 261}));
  // Emoji + "!" are one piece; the emoji's four bytes merge in three steps.
  EXPECT_EQ(tok->Encode("hi\U0001F600!"), (Ids{104, 105, 267, 33}));
  // Contraction piece "'s".
  EXPECT_EQ(tok->Encode("it's"), (Ids{105, 116, 269}));
  // "café": (c,a) r16 and (C3,A9) r17 queued; then (ca,f) r18, (caf,é) r19.
  EXPECT_EQ(tok->Encode("caf\u00e9"), (Ids{275}));
  EXPECT_EQ(tok->Encode(" caf\u00e9"), (Ids{32, 275}));
  // Equal ranks merge leftmost first: "aaaa" -> [aa, a, a] -> [aa, aa] (rank 14 beats (aa,a)'s 15).
  EXPECT_EQ(tok->Encode("aaaa"), (Ids{270, 270}));
  EXPECT_EQ(tok->Encode("aaa"), (Ids{271}));
  // Unicode whitespace: U+3000 pieces, each three bytes E3 80 80 with no merges.
  EXPECT_EQ(tok->Encode("a\u3000\u3000b"), (Ids{97, 227, 128, 128, 227, 128, 128, 98}));
  // No merge makes "zz", and GPT-2 style has no ignore_merges.
  EXPECT_EQ(tok->Encode("zz"), (Ids{122, 122}));
  EXPECT_EQ(tok->Encode(""), Ids{});
}

TEST(BpeTokenizer, AddedAndSpecialTokens) {
  auto tok = Make(Style::kGpt2);
  EXPECT_EQ(tok->Encode("a<|endoftext|>b"), (Ids{97, testing::kEndOfText, 98}));
  EXPECT_EQ(tok->Encode("<|endoftext|><|endoftext|>"),
            (Ids{testing::kEndOfText, testing::kEndOfText}));
  // Special tokens are never split by the pre-tokenizer; the text around them is split alone.
  EXPECT_EQ(tok->Encode(" <|endoftext|> "), (Ids{32, testing::kEndOfText, 32}));
  EXPECT_EQ(tok->Encode("<|user|>the"), (Ids{testing::kUser, 116, 257}));
  // An incomplete special token is ordinary text: "<|", "endoftext", "|".
  EXPECT_EQ(tok->Encode("<|endoftext|"),
            (Ids{60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116, 124}));
  // Non-special added token.
  EXPECT_EQ(tok->Encode("a[X]b"), (Ids{97, testing::kBracketX, 98}));
  // lstrip + rstrip: the spaces on both sides belong to the token.
  EXPECT_EQ(tok->Encode("x <mask> y"), (Ids{120, testing::kMask, 121}));
  EXPECT_EQ(tok->Decode({120, testing::kMask, 121}), "x<mask>y");
  // single_word "ab": matched at 0 and 7, not inside "cab".
  EXPECT_EQ(tok->Encode("ab cab ab"), (Ids{testing::kAbWord, 32, 272, 98, 32, testing::kAbWord}));
  EXPECT_EQ(tok->Encode("abc"), (Ids{97, 98, 99}));
  EXPECT_EQ(tok->TokenToId("<|endoftext|>"), testing::kEndOfText);
  EXPECT_EQ(tok->TokenToId("\xC4\xA0the"), 258);  // "Ġthe"
  EXPECT_FALSE(tok->TokenToId("nope").has_value());
  EXPECT_EQ(tok->IdToToken(258), "\xC4\xA0the");
  EXPECT_EQ(tok->IdToToken(testing::kUser), "<|user|>");
  EXPECT_THROW(tok->IdToToken(5000), Error);
  EXPECT_THROW(tok->Decode({5000}), Error);
}

TEST(BpeTokenizer, LstripRstripFollowHuggingFaceExample) {
  // Hugging Face's own example for an lstrip+rstrip+single_word token: "Hi <mask> there\t<mask>
  // \t<mask>\u2000" gives " <mask> ", "\t<mask>\t", then "<mask>\u2000" (the tab before the third
  // was already taken by the second).
  auto j = testing::MakeTokenizerJson(Style::kGpt2);
  j["added_tokens"] =
      nlohmann::json::array({testing::AddedTokenJson(300, "<mask>", false, true, true, true)});
  auto tok = MakeFrom(j);
  Ids ids = tok->Encode("Hi <mask> there\t<mask>\t<mask>\u2000");
  // "Hi" -> H, i. "there": t h e r e has (h,e) rank 1 and (e,r) rank 8 queued; (h,e) goes
  // first and consumes the 'e' of (e,r); (t,he), (he,r), (r,e) are no merges: [t, he, r, e].
  EXPECT_EQ(ids, (Ids{72, 105, 300, 116, 257, 114, 101, 300, 300}));
}

TEST(BpeTokenizer, Llama3StyleIds) {
  auto tok = Make(Style::kLlama3);
  // "\n\n" is one piece under the Llama-3 pattern, so the merge applies.
  EXPECT_EQ(tok->Encode("x\n\ny"), (Ids{120, 262, 121}));
  // Digits in groups of at most three: "121", "2".
  EXPECT_EQ(tok->Encode("1212"), (Ids{261, 49, 50}));
  // ignore_merges: a piece found whole in the vocabulary is one token.
  EXPECT_EQ(tok->Encode("zz"), (Ids{testing::kZz}));
  // Contractions are case-insensitive: "IT", "'S" (no merge for "'S"), " it", "'s".
  EXPECT_EQ(tok->Encode("IT'S it's"), (Ids{73, 84, 39, 83, 32, 105, 116, 269}));
  // "  x": " " then " x".
  EXPECT_EQ(tok->Encode("  x"), (Ids{32, 32, 120}));
  // Template: BOS from TemplateProcessing.
  EXPECT_EQ(tok->bos_id(), testing::kBeginOfText);
  EXPECT_TRUE(tok->add_bos());
  EXPECT_FALSE(tok->add_eos());
  EXPECT_EQ(tok->EncodeForModel(" the"), (Ids{testing::kBeginOfText, 258}));
  EXPECT_EQ(tok->Encode("<|begin_of_text|>the"), (Ids{testing::kBeginOfText, 116, 257}));
}

TEST(BpeTokenizer, Qwen2StyleIdsAndNfc) {
  if (!Normalizer::Available()) GTEST_SKIP() << "built without utf8proc";
  auto tok = Make(Style::kQwen2);
  EXPECT_EQ(tok->Encode("1212"), (Ids{49, 50, 49, 50}));  // single digits
  // NFC composes e + U+0301 into U+00E9 before splitting: "café" is one token.
  EXPECT_EQ(tok->Encode("cafe\u0301"), (Ids{275}));
  EXPECT_EQ(tok->Decode(tok->Encode("cafe\u0301")), "caf\u00e9");
  // Without NFC (GPT-2 style) the combining mark is its own piece.
  auto gpt2 = Make(Style::kGpt2);
  EXPECT_EQ(gpt2->Encode("cafe\u0301"), (Ids{274, 101, 204, 129}));
  EXPECT_FALSE(tok->add_bos());
}

TEST(BpeTokenizer, AddPrefixSpace) {
  auto j = testing::MakeTokenizerJson(Style::kGpt2);
  j["pre_tokenizer"]["add_prefix_space"] = true;
  auto tok = MakeFrom(j);
  EXPECT_EQ(tok->Encode("the"), (Ids{258}));
  EXPECT_EQ(tok->Encode(" the"), (Ids{258}));  // already starts with a space: none added
  // Each text segment gets its own prefix space (Hugging Face adds it per split).
  EXPECT_EQ(tok->Encode("the<|endoftext|>the"), (Ids{258, testing::kEndOfText, 258}));
}

TEST(BpeTokenizer, RoundTripRandomUnicodeAndBytes) {
  std::mt19937_64 rng(11);
  static const std::vector<std::string> alphabet = {" ",
                                                    "  ",
                                                    "\t",
                                                    "\n",
                                                    "\r\n",
                                                    "\u3000",
                                                    "\u00a0",
                                                    "a",
                                                    "e",
                                                    "h",
                                                    "t",
                                                    "in",
                                                    "the",
                                                    "1",
                                                    "2",
                                                    "9",
                                                    "'s",
                                                    "'S",
                                                    "\u00e9",
                                                    "e\u0301",
                                                    "\u4e2d\u6587",
                                                    "\U0001F600",
                                                    "\U0001F44D\U0001F3FD",
                                                    "!",
                                                    "?",
                                                    "<|endoftext|>",
                                                    "<|endof",
                                                    "[X]",
                                                    "<mask>",
                                                    "ab",
                                                    "zz",
                                                    "\xff",
                                                    "\xc3",
                                                    "\x80",
                                                    std::string(1, '\0')};
  for (Style style : {Style::kGpt2, Style::kLlama3}) {
    auto tok = Make(style);
    for (int iter = 0; iter < 3000; ++iter) {
      std::string s;
      int n = static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
      auto ids = tok->Encode(s);
      std::string back = tok->Decode(ids);
      // lstrip/rstrip tokens swallow the whitespace around them, so compare with that removed.
      if (s.find("<mask>") == std::string::npos) {
        ASSERT_EQ(back, s) << "style " << static_cast<int>(style);
      }
      for (int32_t id : ids) ASSERT_LT(id, tok->vocab_size());
    }
    // Every byte value alone and all 256 together.
    std::string all;
    for (int b = 0; b < 256; ++b) {
      std::string one(1, static_cast<char>(b));
      ASSERT_EQ(tok->Encode(one), (Ids{b})) << b;
      all += one;
    }
    EXPECT_EQ(tok->Decode(tok->Encode(all)), all);
  }
}

TEST(BpeTokenizer, SpecialTokensNeverSplitRandomized) {
  // Wherever "<|endoftext|>" occurs in the input, its id appears in the output, and the text
  // between occurrences encodes exactly as it does alone. (The parts cannot spell the token.)
  auto tok = Make(Style::kGpt2);
  std::mt19937_64 rng(5);
  static const std::vector<std::string> parts = {"a", " ", "\n", "x y", "<|", "|>", "12", "\u00e9"};
  for (int iter = 0; iter < 500; ++iter) {
    std::string text;
    Ids expected;
    int chunks = 1 + static_cast<int>(rng() % 4);
    for (int c = 0; c < chunks; ++c) {
      std::string chunk;
      for (int k = static_cast<int>(rng() % 5); k > 0; --k) chunk += parts[rng() % parts.size()];
      if (c) {
        text += "<|endoftext|>";
        expected.push_back(testing::kEndOfText);
      }
      auto piece = tok->Encode(chunk);
      text += chunk;
      expected.insert(expected.end(), piece.begin(), piece.end());
    }
    ASSERT_EQ(tok->Encode(text), expected) << text;
  }
}

TEST(BpeTokenizer, ByteFallbackAndUnk) {
  auto j = testing::MakeTokenizerJson(Style::kGpt2);
  auto& vocab = j["model"]["vocab"];
  std::string q = ByteLevelEncode("q");
  vocab.erase(q);  // id 113 is now free; "q" has no token
  auto bad = [&] { return MakeFrom(j)->Encode("aqa"); };
  EXPECT_THROW(bad(), Error);
  vocab["<0x71>"] = 113;
  j["model"]["byte_fallback"] = true;
  EXPECT_EQ(MakeFrom(j)->Encode("aqa"), (Ids{97, 113, 97}));
  vocab.erase("<0x71>");
  vocab["<unk>"] = 113;
  j["model"]["byte_fallback"] = false;
  j["model"]["unk_token"] = "<unk>";
  j["model"]["fuse_unk"] = true;
  EXPECT_EQ(MakeFrom(j)->Encode("aqqa"), (Ids{97, 113, 97}));
  j["model"]["fuse_unk"] = false;
  EXPECT_EQ(MakeFrom(j)->Encode("aqqa"), (Ids{97, 113, 113, 97}));
}

TEST(BpeTokenizer, UnsupportedAndMalformed) {
  auto expect_unsupported = [](const nlohmann::json& j, const std::string& needle) {
    try {
      MakeFrom(j);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const UnsupportedTokenizer& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  auto base = testing::MakeTokenizerJson(Style::kGpt2);
  auto j = base;
  j["model"]["type"] = "WordPiece";
  expect_unsupported(j, "WordPiece");
  j = base;
  j["decoder"] = {{"type", "Metaspace"}};
  expect_unsupported(j, "Metaspace");
  j = base;
  j["pre_tokenizer"] = nullptr;  // SentencePiece-style BPE (Llama-2's tokenizer.json)
  expect_unsupported(j, "SentencePiece-style");
  j = base;
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_unsupported(j, "Lowercase");
  j = base;
  j["post_processor"] = {{"type", "RobertaProcessing"}};
  expect_unsupported(j, "RobertaProcessing");
  j = base;
  j["model"]["continuing_subword_prefix"] = "##";
  expect_unsupported(j, "continuing_subword_prefix");

  auto expect_error = [](const std::string& text, const std::string& needle) {
    try {
      ParseTokenizerJson(text, "t.json");
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const UnsupportedTokenizer& e) {
      ADD_FAILURE() << "reported as unsupported: " << e.what();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error("{not json", "not valid JSON");
  j = base;
  j["model"]["merges"].push_back("q\xC4\xA0 nothere");
  expect_error(j.dump(), "not in the vocabulary");
  j = base;
  j["model"]["merges"].push_back("a b c");
  expect_error(j.dump(), "is not two tokens");
  j = base;
  j["model"].erase("vocab");
  expect_error(j.dump(), "t.json");
  j = base;
  j["model"]["vocab"]["dup"] = 5;
  expect_error(j.dump(), "id 5 used by both");
  EXPECT_THROW(LoadTokenizerJson("/nonexistent/tokenizer.json"), Error);
}

TEST(BpeTokenizer, MergesStringAndArrayFormsAgree) {
  auto a = testing::MakeTokenizerJson(Style::kGpt2);
  auto b = a;
  for (auto& m : b["model"]["merges"]) {
    std::string s = m.get<std::string>();
    auto sp = s.find(' ');
    m = nlohmann::json::array({s.substr(0, sp), s.substr(sp + 1)});
  }
  auto ta = MakeFrom(a), tb = MakeFrom(b);
  for (const char* s : {"in the  inn", "caf\u00e9 aaaa 1212", "hi\U0001F600!"})
    EXPECT_EQ(ta->Encode(s), tb->Encode(s));
}

}  // namespace
}  // namespace ps

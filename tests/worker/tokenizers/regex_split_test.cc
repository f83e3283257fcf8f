#include "worker/tokenizers/regex_split.h"

#include <gtest/gtest.h>
#include <re2/re2.h>

#include <random>

#include "common/error.h"
#include "tests/worker/tokenizers/test_tokenizer_json.h"
#include "worker/tokenizers/utf8.h"

namespace ps {
namespace {

using Pieces = std::vector<std::string>;

Pieces Split(const RegexSplitter& s, std::string_view text) {
  std::vector<std::string_view> v;
  s.SplitIsolated(text, v);
  return {v.begin(), v.end()};
}

TEST(RegexSplit, Gpt2KnownSplits) {
  RegexSplitter gpt2(kGpt2SplitPattern);
  // Hugging Face's ByteLevel pre-tokenizer documents these splits.
  EXPECT_EQ(
      Split(gpt2, "Hello my friend, how is your day going?"),
      (Pieces{"Hello", " my", " friend", ",", " how", " is", " your", " day", " going", "?"}));
  EXPECT_EQ(Split(gpt2, "Hello there       dear"), (Pieces{"Hello", " there", "      ", " dear"}));
  EXPECT_EQ(Split(gpt2, "Hello there\nHello there"),
            (Pieces{"Hello", " there", "\n", "Hello", " there"}));
  // Whitespace runs: the last space goes with the next word; at the end the run stays whole.
  EXPECT_EQ(Split(gpt2, "a    b"), (Pieces{"a", "   ", " b"}));
  EXPECT_EQ(Split(gpt2, "a    "), (Pieces{"a", "    "}));
  EXPECT_EQ(Split(gpt2, "x\n\ny"), (Pieces{"x", "\n", "\n", "y"}));
  EXPECT_EQ(Split(gpt2, "\t\tx"), (Pieces{"\t", "\t", "x"}));
  EXPECT_EQ(Split(gpt2, " \n x"), (Pieces{" \n", " x"}));
  // Unicode whitespace counts as \s (Oniguruma), unlike RE2's ASCII \s.
  EXPECT_EQ(Split(gpt2, "a\u3000\u3000b"), (Pieces{"a", "\u3000", "\u3000", "b"}));
  EXPECT_EQ(Split(gpt2, "a\u00a0b"), (Pieces{"a", "\u00a0", "b"}));
  EXPECT_EQ(Split(gpt2, "a\u2003\u2003"), (Pieces{"a", "\u2003\u2003"}));
  // Contractions are case-sensitive in GPT-2's pattern; digits in one run; emoji with punctuation.
  EXPECT_EQ(Split(gpt2, "it's IT'S"), (Pieces{"it", "'s", " IT", "'", "S"}));
  EXPECT_EQ(Split(gpt2, "12345 6"), (Pieces{"12345", " 6"}));
  EXPECT_EQ(Split(gpt2, "hi\U0001F600!"), (Pieces{"hi", "\U0001F600!"}));
  EXPECT_EQ(Split(gpt2, "caf\u00e9 na\u00efve"), (Pieces{"caf\u00e9", " na\u00efve"}));
  EXPECT_EQ(Split(gpt2, "_hello"), (Pieces{"_", "hello"}));
  EXPECT_EQ(Split(gpt2, ""), Pieces{});
}

TEST(RegexSplit, Llama3KnownSplits) {
  RegexSplitter l3(testing::kLlama3Pattern);
  EXPECT_EQ(Split(l3, "x\n\ny"), (Pieces{"x", "\n\n", "y"}));
  EXPECT_EQ(Split(l3, "x!!\n\ny"), (Pieces{"x", "!!\n\n", "y"}));
  EXPECT_EQ(Split(l3, "1234567"), (Pieces{"123", "456", "7"}));
  EXPECT_EQ(Split(l3, "IT'S it's"), (Pieces{"IT", "'S", " it", "'s"}));
  EXPECT_EQ(Split(l3, "_hello world"), (Pieces{"_hello", " world"}));
  EXPECT_EQ(Split(l3, "  x"), (Pieces{" ", " x"}));
  EXPECT_EQ(Split(l3, "a  \n  b"), (Pieces{"a", "  \n", " ", " b"}));
  EXPECT_EQ(Split(l3, "def f():\n    return 1\n"),
            (Pieces{"def", " f", "():\n", "   ", " return", " ", "1", "\n"}));
  EXPECT_EQ(Split(l3, "end   "), (Pieces{"end", "   "}));
}

TEST(RegexSplit, Qwen2SingleDigits) {
  RegexSplitter q(testing::kQwen2Pattern);
  EXPECT_EQ(Split(q, "x=1212;"), (Pieces{"x", "=", "1", "2", "1", "2", ";"}));
}

TEST(RegexSplit, Translation) {
  bool la = false;
  std::string t = TranslatePatternForRe2(R"(a(b)c|\s+(?!\S)|\s+)", &la);
  EXPECT_TRUE(la);
  EXPECT_EQ(t.find("(b)"), std::string::npos);  // capturing group made non-capturing
  EXPECT_NE(t.find("(?:b)"), std::string::npos);
  EXPECT_EQ(t.find("(?!"), std::string::npos);
  t = TranslatePatternForRe2(R"([^\s\p{L}])", &la);
  EXPECT_FALSE(la);
  EXPECT_NE(t.find("\\x{3000}"), std::string::npos);
  // Unsupported constructs are refused, not approximated.
  EXPECT_THROW(RegexSplitter(R"(a(?=b))"), Error);
  EXPECT_THROW(RegexSplitter(R"(\s+(?!\S)|x)"), Error);  // lookahead not followed by \s+
  EXPECT_THROW(RegexSplitter(R"((a)\1)"), Error);
  EXPECT_THROW(RegexSplitter(R"(a++)"), Error);
  EXPECT_THROW(RegexSplitter(R"([a)"), Error);
  // Literal pieces inside classes survive: "]" first in a class, escaped brackets.
  RegexSplitter lit(R"([]x]+|[\[]+)");
  EXPECT_EQ(Split(lit, "a]x][[b"), (Pieces{"a", "]x]", "[[", "b"}));
  RegexSplitter removed(R"(,)");
  std::vector<std::string_view> v;
  removed.SplitRemoved("a,b,,c,", v);
  EXPECT_EQ(Pieces(v.begin(), v.end()), (Pieces{"a", "b", "c"}));
}

// ---- reference: a direct emulation of a backtracking engine's top-level alternation ----------
// At each position the alternatives are tried in order, each anchored (RE2 gives the same match
// as a backtracking engine for an alternative without lookaround). The lookahead alternative
// `\s+(?!\S)` is evaluated literally: the longest whitespace prefix of length k >= 1 such that the
// next code point is not a non-space (end of text or whitespace), trying k from long to short as
// backtracking does. No position matched: that code point joins the gap.
// One compiled alternative; null for the lookahead one.
using Alternatives = std::vector<std::unique_ptr<RE2>>;

Alternatives CompileAlternatives(const std::vector<std::string>& alts) {
  Alternatives res;
  for (const auto& a : alts) {
    if (a == R"(\s+(?!\S))") {
      res.push_back(nullptr);
      continue;
    }
    bool la;
    res.push_back(std::make_unique<RE2>(TranslatePatternForRe2(a, &la)));
    EXPECT_TRUE(res.back()->ok()) << a;
  }
  return res;
}

Pieces ReferenceSplit(const Alternatives& res, std::string_view text) {
  auto ws_at = [&](size_t p, size_t* len) {
    uint32_t cp;
    *len = utf8::Decode(text, p, &cp);
    return cp != utf8::kInvalid && utf8::IsWhiteSpace(cp);
  };
  Pieces out;
  size_t gap = 0, p = 0;
  while (p < text.size()) {
    size_t mlen = 0;
    for (size_t a = 0; a < res.size() && mlen == 0; ++a) {
      if (!res[a]) {
        std::vector<size_t> ends;  // ends of whitespace prefixes
        size_t q = p, l;
        while (q < text.size() && ws_at(q, &l)) ends.push_back(q += l);
        for (size_t k = ends.size(); k-- > 0;) {
          size_t e = ends[k], l2;
          if (e == text.size() || ws_at(e, &l2)) {
            mlen = e - p;
            break;
          }
        }
        continue;
      }
      re2::StringPiece in(text.data() + p, text.size() - p), m;
      if (res[a]->Match(in, 0, in.size(), RE2::ANCHOR_START, &m, 1)) mlen = m.size();
    }
    if (mlen == 0) {
      uint32_t cp;
      p += utf8::Decode(text, p, &cp);
      continue;
    }
    if (p > gap) out.emplace_back(text.substr(gap, p - gap));
    out.emplace_back(text.substr(p, mlen));
    p += mlen;
    gap = p;
  }
  if (gap < text.size()) out.emplace_back(text.substr(gap));
  return out;
}

std::string RandomTrickyText(std::mt19937_64& rng, int n) {
  static const std::vector<std::string> alphabet = {
      " ",      " ",      " ",      "\t",         "\n",     "\n",     "\r",     "\u3000",
      "\u00a0", "\u2028", "\u0085", "a",          "Z",      "s",      "t",      "'",
      "\u00e9", "\u00df", "\u4e2d", "1",          "2",      "\u0663", "\u00bd", "!",
      "_",      "(",      ")",      "\U0001F600", "\u0301", "\u200d", "\x0b",   "\x0c"};
  std::string s;
  for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
  return s;
}

TEST(RegexSplit, MatchesReferenceOnRandomText) {
  struct Case {
    const char* pattern;
    std::vector<std::string> alts;
  };
  std::vector<Case> cases = {
      {kGpt2SplitPattern,
       {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d", R"( ?\p{L}+)", R"( ?\p{N}+)",
        R"( ?[^\s\p{L}\p{N}]+)", R"(\s+(?!\S))", R"(\s+)"}},
      {testing::kLlama3Pattern,
       {R"((?i:'s|'t|'re|'ve|'m|'ll|'d))", R"([^\r\n\p{L}\p{N}]?\p{L}+)", R"(\p{N}{1,3})",
        R"( ?[^\s\p{L}\p{N}]+[\r\n]*)", R"(\s*[\r\n]+)", R"(\s+(?!\S))", R"(\s+)"}},
      {testing::kQwen2Pattern,
       {R"((?i:'s|'t|'re|'ve|'m|'ll|'d))", R"([^\r\n\p{L}\p{N}]?\p{L}+)", R"(\p{N})",
        R"( ?[^\s\p{L}\p{N}]+[\r\n]*)", R"(\s*[\r\n]+)", R"(\s+(?!\S))", R"(\s+)"}},
  };
  std::mt19937_64 rng(2024);
  for (const auto& c : cases) {
    RegexSplitter splitter(c.pattern);
    Alternatives alts = CompileAlternatives(c.alts);
    for (int iter = 0; iter < 2000; ++iter) {
      std::string text = RandomTrickyText(rng, 1 + static_cast<int>(rng() % 24));
      ASSERT_EQ(Split(splitter, text), ReferenceSplit(alts, text))
          << "pattern " << c.pattern << " text [" << text << "]";
    }
  }
}

TEST(RegexSplit, InvalidUtf8IsKeptInGaps) {
  RegexSplitter gpt2(kGpt2SplitPattern);
  std::string text = "ab\xff\xfe cd\x80";
  auto pieces = Split(gpt2, text);
  std::string joined;
  for (const auto& p : pieces) joined += p;
  EXPECT_EQ(joined, text);
}

}  // namespace
}  // namespace ps

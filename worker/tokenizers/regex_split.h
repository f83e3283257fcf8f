// The Split pre-tokenizer of Hugging Face tokenizer.json files (and ByteLevel's built-in GPT-2
// regex), on RE2. Hugging Face compiles these patterns with Oniguruma; RE2 differs in three ways
// that matter here, handled by rewriting the pattern:
//  - `\s`/`\S` are ASCII in RE2 but Unicode White_Space in Oniguruma: rewritten to explicit
//    code-point ranges (inside and outside character classes); likewise `\d` -> \p{Nd} and `\w`.
//  - RE2 has no lookahead. The GPT-2 / Llama-3 / Qwen2 patterns contain it only in the
//    alternative `\s+(?!\S)`, always directly followed by the alternative `\s+`. That pair is
//    replaced by one `\s+` and its meaning restored after each match, see regex_split.cc.
//  - Capturing groups are turned into non-capturing ones (no captures are needed).
// Any other construct RE2 lacks (other lookarounds, backreferences, possessive quantifiers) is
// rejected with ps::Error at load time rather than matched differently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace ps {

// The pattern ByteLevel uses when its use_regex is true (GPT-2's).
extern const char* const kGpt2SplitPattern;

// Rewrites an Oniguruma pattern for RE2 (see above). Sets *whitespace_lookahead when the
// `\s+(?!\S)|\s+` pair was found and folded into one `\s+`; then *before_lookahead (when
// given) receives the translated alternatives that precede it. Throws ps::Error for unsupported
// patterns.
std::string TranslatePatternForRe2(std::string_view pattern, bool* whitespace_lookahead,
                                   std::string* before_lookahead = nullptr);

class RegexSplitter {
 public:
  // Throws ps::Error when the pattern is unsupported or does not compile.
  explicit RegexSplitter(std::string_view oniguruma_pattern);
  ~RegexSplitter();
  RegexSplitter(const RegexSplitter&) = delete;
  RegexSplitter& operator=(const RegexSplitter&) = delete;

  // Splits `text` into pieces the way Split(behavior = Isolated) does: every match is a piece and
  // so is every non-empty stretch between matches; empty pieces are dropped. Appends views into
  // `text` to `out`.
  void SplitIsolated(std::string_view text, std::vector<std::string_view>& out) const;
  // Split(behavior = Removed): only the stretches between matches.
  void SplitRemoved(std::string_view text, std::vector<std::string_view>& out) const;

  const std::string& re2_pattern() const { return re2_pattern_; }

 private:
  struct Span {
    size_t begin, end;
  };
  void Matches(std::string_view text, std::vector<Span>& out) const;
  bool FromWhitespaceAlternative(std::string_view text, size_t begin, size_t end) const;

  std::string re2_pattern_;
  bool whitespace_lookahead_ = false;
  std::unique_ptr<re2::RE2> re_;
  std::unique_ptr<re2::RE2> before_;  // the alternatives before `\s+(?!\S)`, if any
};

}  // namespace ps

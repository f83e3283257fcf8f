#include "worker/tokenizers/regex_split.h"

#include <re2/re2.h>

#include "common/error.h"
#include "worker/tokenizers/utf8.h"

namespace ps {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// Oniguruma's Unicode \w: letters, marks, decimal digits, connector punctuation.
constexpr const char* kWordRanges = "\\p{L}\\p{M}\\p{Nd}\\p{Pc}";

// Splits a pattern at its top-level '|' (outside groups and character classes).
std::vector<std::string> TopLevelAlternatives(std::string_view p) {
  std::vector<std::string> alts(1);
  int depth = 0;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      alts.back() += p.substr(i, 2);
      ++i;
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
    } else if (c == '[') {
      in_class = true;
      // A ']' right after '[' or '[^' is a literal member, not the end of the class.
      alts.back() += c;
      if (i + 1 < p.size() && p[i + 1] == '^') alts.back() += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') alts.back() += p[++i];
      continue;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (c == '|' && depth == 0) {
      alts.emplace_back();
      continue;
    }
    alts.back() += c;
  }
  return alts;
}

std::string Unsupported(std::string_view pattern, const std::string& why) {
  return "tokenizer regex not supported (" + why + "): " + std::string(pattern);
}

// Rewrites escapes and groups of one pattern fragment (no lookahead handling here).
std::string RewriteFragment(std::string_view p, std::string_view whole) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '\\' && i + 1 < p.size()) {
      char e = p[i + 1];
      ++i;
      switch (e) {
        case 's':
          out += in_class ? std::string(utf8::kWhiteSpaceRanges)
                          : "[" + std::string(utf8::kWhiteSpaceRanges) + "]";
          break;
        case 'S':
          out += in_class ? std::string(utf8::kNonWhiteSpaceRanges)
                          : "[^" + std::string(utf8::kWhiteSpaceRanges) + "]";
          break;
        case 'd':
          out += "\\p{Nd}";
          break;
        case 'D':
          out += "\\P{Nd}";
          break;
        case 'w':
          out += in_class ? std::string(kWordRanges) : "[" + std::string(kWordRanges) + "]";
          break;
        case 'W':
          if (in_class) throw Error(Unsupported(whole, "\\W inside a character class"));
          out += "[^" + std::string(kWordRanges) + "]";
          break;
        case 'h':
        case 'H':
        case 'R':
        case 'X':
        case 'K':
        case 'G':
        case 'k':
        case 'g':
          throw Error(Unsupported(whole, std::string("Oniguruma escape \\") + e));
        default:
          if (e >= '1' && e <= '9') throw Error(Unsupported(whole, "backreference"));
          out += '\\';
          out += e;
          // \p{..}, \P{..}, \x{..}: the braces belong to the escape.
          if ((e == 'p' || e == 'P' || e == 'x') && i + 1 < p.size() && p[i + 1] == '{') {
            size_t close = p.find('}', i + 1);
            if (close == std::string_view::npos) throw Error(Unsupported(whole, "unclosed \\p{"));
            out += p.substr(i + 1, close - i);
            i = close;
          }
      }
      continue;
    }
    if (in_class) {
      if (c == '[') throw Error(Unsupported(whole, "nested character class"));
      if (c == ']') in_class = false;
      out += c;
      continue;
    }
    if (c == '[') {
      in_class = true;
      out += c;
      if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
      if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i];
      continue;
    }
    if (c == '(') {
      if (i + 1 < p.size() && p[i + 1] == '?') {
        if (i + 2 < p.size() &&
            (p[i + 2] == '=' || p[i + 2] == '!' || p[i + 2] == '<' || p[i + 2] == '>'))
          throw Error(Unsupported(whole, "lookaround or atomic group"));
        out += c;
      } else {
        out += "(?:";  // capturing -> non-capturing
      }
      continue;
    }
    if ((c == '+' || c == '*' || c == '?') && i + 1 < p.size() && p[i + 1] == '+')
      throw Error(Unsupported(whole, "possessive quantifier"));
    out += c;
  }
  return out;
}

}  // namespace

std::string TranslatePatternForRe2(std::string_view pattern, bool* whitespace_lookahead,
                                   std::string* before_lookahead) {
  *whitespace_lookahead = false;
  std::vector<std::string> alts = TopLevelAlternatives(pattern);
  std::vector<std::string> out;
  for (size_t i = 0; i < alts.size(); ++i) {
    if (alts[i] == R"(\s+(?!\S))") {
      // `\s+(?!\S)|\s+` (Perl/Oniguruma leftmost-first): at a position where no earlier
      // alternative matches and whitespace starts, let the maximal whitespace run there have n
      // code points. If the run ends the text, `\s+(?!\S)` takes all n. Otherwise the run is
      // followed by a non-space, so `\s+` must back off one code point for `(?!\S)` to hold:
      // it takes n-1 when n >= 2; when n == 1 it fails and the next alternative `\s+` takes the
      // single code point. So both together match "the run, minus its last code point when the
      // run has >= 2 code points and is followed by something". RE2 matches the run with one
      // `\s+` and RegexSplitter trims its match by that rule. Neither alternative can match
      // where the other does not, so which position matches (leftmost) is unchanged.
      if (*whitespace_lookahead || i + 1 >= alts.size() || alts[i + 1] != R"(\s+)")
        throw Error(Unsupported(pattern, "\\s+(?!\\S) must be followed by the alternative \\s+"));
      *whitespace_lookahead = true;
      if (before_lookahead) {
        before_lookahead->clear();
        for (size_t k = 0; k < out.size(); ++k) *before_lookahead += (k ? "|" : "") + out[k];
      }
      out.push_back(RewriteFragment(R"(\s+)", pattern));
      ++i;  // the `\s+` alternative is folded into the group
      continue;
    }
    out.push_back(RewriteFragment(alts[i], pattern));
  }
  std::string joined;
  for (size_t i = 0; i < out.size(); ++i) joined += (i ? "|" : "") + out[i];
  return joined;
}

RegexSplitter::RegexSplitter(std::string_view oniguruma_pattern) {
  std::string before;
  re2_pattern_ = TranslatePatternForRe2(oniguruma_pattern, &whitespace_lookahead_, &before);
  RE2::Options opts;
  opts.set_log_errors(false);
  opts.set_max_mem(int64_t{64} << 20);  // big Unicode classes: keep the DFA from falling back
  re_ = std::make_unique<RE2>(re2_pattern_, opts);
  if (!re_->ok())
    throw Error("tokenizer regex does not compile with RE2 (" + re_->error() +
                "): " + std::string(oniguruma_pattern));
  if (whitespace_lookahead_ && !before.empty()) {
    before_ = std::make_unique<RE2>("(?:" + before + ")", opts);
    if (!before_->ok()) throw Error("tokenizer regex: " + before_->error());
  }
}

bool RegexSplitter::FromWhitespaceAlternative(std::string_view text, size_t begin,
                                              size_t end) const {
  // Only the `\s+` alternative's matches need trimming. Its match is all white space, and it
  // is chosen only when no earlier alternative matches at `begin` (leftmost-first: at a given
  // start, the first alternative in pattern order that matches wins, whatever its length).
  // Asking RE2 for the capture group instead would force its slow submatch engines on every
  // match (10x slower overall); this test is a DFA run on white-space matches only.
  for (size_t i = begin; i < end;) {
    uint32_t cp;
    i += utf8::Decode(text, i, &cp);
    if (cp == utf8::kInvalid || !utf8::IsWhiteSpace(cp)) return false;
  }
  if (!before_) return true;
  re2::StringPiece input(text.data(), text.size());
  return !before_->Match(input, begin, text.size(), RE2::ANCHOR_START, nullptr, 0);
}

RegexSplitter::~RegexSplitter() = default;

void RegexSplitter::Matches(std::string_view text, std::vector<Span>& out) const {
  re2::StringPiece input(text.data(), text.size());
  re2::StringPiece m[1];
  size_t pos = 0;
  while (pos <= text.size()) {
    if (!re_->Match(input, pos, text.size(), RE2::UNANCHORED, m, 1)) break;
    size_t begin = static_cast<size_t>(m[0].data() - text.data());
    size_t end = begin + m[0].size();
    if (end == begin) {  // empty match: nothing to split off; move on one code point
      if (begin >= text.size()) break;
      uint32_t cp;
      pos = begin + utf8::Decode(text, begin, &cp);
      continue;
    }
    if (whitespace_lookahead_ && end < text.size() && FromWhitespaceAlternative(text, begin, end)) {
      size_t last = utf8::LastCharStart(text, begin, end);
      if (last > begin) end = last;  // run of >= 2 code points followed by a non-space
    }
    out.push_back({begin, end});
    pos = end;
  }
}

void RegexSplitter::SplitIsolated(std::string_view text, std::vector<std::string_view>& out) const {
  std::vector<Span> spans;
  Matches(text, spans);
  size_t prev = 0;
  for (const Span& s : spans) {
    if (s.begin > prev) out.push_back(text.substr(prev, s.begin - prev));
    out.push_back(text.substr(s.begin, s.end - s.begin));
    prev = s.end;
  }
  if (prev < text.size()) out.push_back(text.substr(prev));
}

void RegexSplitter::SplitRemoved(std::string_view text, std::vector<std::string_view>& out) const {
  std::vector<Span> spans;
  Matches(text, spans);
  size_t prev = 0;
  for (const Span& s : spans) {
    if (s.begin > prev) out.push_back(text.substr(prev, s.begin - prev));
    prev = s.end;
  }
  if (prev < text.size()) out.push_back(text.substr(prev));
}

}  // namespace ps

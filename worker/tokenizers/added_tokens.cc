#include "worker/tokenizers/added_tokens.h"

#include <re2/re2.h>

#include <algorithm>

#include "worker/tokenizers/utf8.h"

namespace ps {

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens,
                                     std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)), by_first_byte_(256) {
  for (size_t i = 0; i < patterns_.size(); ++i)
    if (!patterns_[i].empty())
      by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(static_cast<int>(i));
  for (auto& v : by_first_byte_)
    std::stable_sort(v.begin(), v.end(),
                     [&](int a, int b) { return patterns_[a].size() > patterns_[b].size(); });
  // Word characters for single_word (Rust regex's Unicode \w: alphabetic, marks, decimal
  // digits, connector punctuation, join controls).
  word_char_ = std::make_unique<re2::RE2>("[\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]");
}

AddedTokenMatcher::~AddedTokenMatcher() = default;
AddedTokenMatcher::AddedTokenMatcher(AddedTokenMatcher&&) noexcept = default;

void AddedTokenMatcher::Split(std::string_view text, std::vector<TextSegment>& out) const {
  auto is_word_cp = [&](size_t begin, size_t len) {
    return RE2::FullMatch(re2::StringPiece(text.data() + begin, len), *word_char_);
  };
  auto ends_with_word = [&](size_t pos) {  // code point just before pos
    if (pos == 0) return false;
    size_t s = utf8::LastCharStart(text, 0, pos);
    return is_word_cp(s, pos - s);
  };
  auto starts_with_word = [&](size_t pos) {  // code point at pos
    if (pos >= text.size()) return false;
    uint32_t cp;
    size_t len = utf8::Decode(text, pos, &cp);
    return cp != utf8::kInvalid && is_word_cp(pos, len);
  };

  size_t emitted = 0;  // text before this is already in `out`
  size_t i = 0;
  while (i < text.size()) {
    const auto& cands = by_first_byte_[static_cast<unsigned char>(text[i])];
    int hit = -1;
    for (int c : cands) {
      const std::string& p = patterns_[c];
      if (text.size() - i >= p.size() && text.compare(i, p.size(), p) == 0) {
        hit = c;  // longest first: the first that fits is the leftmost-longest match
        break;
      }
    }
    if (hit < 0) {
      ++i;
      continue;
    }
    const AddedToken& tok = tokens_[hit];
    size_t start = i, stop = i + patterns_[hit].size();
    if (tok.single_word && (ends_with_word(start) || starts_with_word(stop))) {
      i = stop;  // as a non-overlapping matcher does: scanning resumes after the discarded match
      continue;
    }
    if (tok.lstrip) {
      size_t s = start;
      while (s > emitted) {
        size_t p = utf8::LastCharStart(text, emitted, s);
        uint32_t cp;
        utf8::Decode(text, p, &cp);
        if (cp == utf8::kInvalid || !utf8::IsWhiteSpace(cp)) break;
        s = p;
      }
      start = s;
    }
    if (tok.rstrip) {
      while (stop < text.size()) {
        uint32_t cp;
        size_t len = utf8::Decode(text, stop, &cp);
        if (cp == utf8::kInvalid || !utf8::IsWhiteSpace(cp)) break;
        stop += len;
      }
    }
    if (start > emitted) out.push_back({text.substr(emitted, start - emitted), -1});
    out.push_back({text.substr(start, stop - start), tok.id});
    emitted = stop;
    i = stop;
  }
  if (emitted < text.size()) out.push_back({text.substr(emitted), -1});
}

}  // namespace ps

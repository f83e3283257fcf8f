// Added (and special) tokens of a tokenizer.json: found in the text before pre-tokenization,
// each match becoming its own id and never split, the way Hugging Face's AddedVocabulary does:
// leftmost-longest matching, non-overlapping; `single_word` tokens only where no word character
// touches them; `lstrip`/`rstrip` tokens swallow the whitespace on that side.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace ps {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = true;  // matched in the normalized text (else in the raw text)
  bool special = false;
};

struct TextSegment {
  std::string_view text;
  int32_t id = -1;  // >= 0: an added token matched here; -1: plain text still to tokenize
};

class AddedTokenMatcher {
 public:
  // `patterns[i]` is what to look for (the content, normalized when the token is matched in
  // normalized text); tokens with empty patterns are ignored.
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  ~AddedTokenMatcher();
  AddedTokenMatcher(AddedTokenMatcher&&) noexcept;

  // Splits `text` into plain stretches and matched tokens, in order (empty stretches omitted).
  void Split(std::string_view text, std::vector<TextSegment>& out) const;
  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  // For each first byte, indices of the patterns starting with it, longest first.
  std::vector<std::vector<int>> by_first_byte_;
  std::unique_ptr<re2::RE2> word_char_;
};

}  // namespace ps

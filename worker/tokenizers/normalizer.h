// Unicode normalizers of tokenizer.json ("NFC", "NFD", "NFKC", "NFKD", or a "Sequence" of them;
// Qwen2 uses NFC) through utf8proc when the build has it (Debian's libutf8proc-dev). Without it,
// loading a tokenizer that needs one fails with a clear ps::Error rather than tokenizing
// unnormalized text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ps {

enum class UnicodeForm { kNFC, kNFD, kNFKC, kNFKD };

class Normalizer {
 public:
  // Throws ps::Error when this build has no Unicode normalization support.
  explicit Normalizer(std::vector<UnicodeForm> forms);
  // Applies the forms in order. Invalid UTF-8 bytes are passed through untouched (each valid
  // stretch between them is normalized on its own).
  std::string Apply(std::string_view text) const;
  bool empty() const { return forms_.empty(); }

  static bool Available();

 private:
  std::vector<UnicodeForm> forms_;
};

}  // namespace ps

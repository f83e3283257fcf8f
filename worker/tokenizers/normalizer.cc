#include "worker/tokenizers/normalizer.h"

#include <cstdlib>

#include "common/error.h"
#include "worker/tokenizers/utf8.h"

#ifdef PS_HAVE_UTF8PROC
#include <utf8proc.h>
#endif

namespace ps {
namespace {

#ifdef PS_HAVE_UTF8PROC
std::string NormalizeValid(std::string_view s, UnicodeForm form) {
  if (s.empty()) return {};
  int options = UTF8PROC_STABLE;
  switch (form) {
    case UnicodeForm::kNFC:
      options |= UTF8PROC_COMPOSE;
      break;
    case UnicodeForm::kNFD:
      options |= UTF8PROC_DECOMPOSE;
      break;
    case UnicodeForm::kNFKC:
      options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT;
      break;
    case UnicodeForm::kNFKD:
      options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT;
      break;
  }
  utf8proc_uint8_t* dst = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &dst,
                                    static_cast<utf8proc_option_t>(options));
  if (n < 0) throw Error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
  std::string out(reinterpret_cast<const char*>(dst), static_cast<size_t>(n));
  std::free(dst);
  return out;
}
#endif

}  // namespace

bool Normalizer::Available() {
#ifdef PS_HAVE_UTF8PROC
  return true;
#else
  return false;
#endif
}

Normalizer::Normalizer(std::vector<UnicodeForm> forms) : forms_(std::move(forms)) {
  if (!forms_.empty() && !Available())
    throw Error(
        "tokenizer needs Unicode normalization (NFC/NFD/NFKC/NFKD) but this build has no "
        "utf8proc (install libutf8proc-dev and rebuild)");
}

std::string Normalizer::Apply(std::string_view text) const {
  std::string cur(text);
#ifdef PS_HAVE_UTF8PROC
  for (UnicodeForm form : forms_) {
    std::string out;
    size_t run = 0, i = 0;
    while (i < cur.size()) {
      uint32_t cp;
      size_t len = utf8::Decode(cur, i, &cp);
      if (cp == utf8::kInvalid) {
        out += NormalizeValid(std::string_view(cur).substr(run, i - run), form);
        out.push_back(cur[i]);
        run = i + 1;
      }
      i += len;
    }
    out += NormalizeValid(std::string_view(cur).substr(run), form);
    cur = std::move(out);
  }
#endif
  return cur;
}

}  // namespace ps

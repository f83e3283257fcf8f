#include "worker/serve/incremental_text.h"

#include <algorithm>

namespace ps::serve {

namespace {
constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

bool EndsInReplacement(const std::string& s) {
  return s.size() >= 3 && s.compare(s.size() - 3, 3, kReplacement) == 0;
}
}  // namespace

IncrementalText::IncrementalText(const Tokenizer& tokenizer, std::vector<int32_t> prompt,
                                 std::vector<std::string> stop)
    : tok_(tokenizer),
      ids_(std::move(prompt)),
      prompt_len_(static_cast<ptrdiff_t>(ids_.size())),
      stop_(std::move(stop)) {
  prompt_text_ = tok_.Decode(ids_);
  // The window starts a few prompt tokens back: enough context for the first token's spacing.
  committed_end_ = ids_.size();
  window_ = committed_end_ >= 4 ? committed_end_ - 4 : 0;
  window_text_ = DecodeRange(window_, committed_end_);
}

std::string IncrementalText::DecodeRange(size_t begin, size_t end) const {
  return tok_.Decode(std::vector<int32_t>(ids_.begin() + static_cast<ptrdiff_t>(begin),
                                          ids_.begin() + static_cast<ptrdiff_t>(end)));
}

std::string IncrementalText::FullCompletionText() const {
  const std::string full = tok_.Decode(ids_);
  if (full.compare(0, prompt_text_.size(), prompt_text_) == 0)
    return full.substr(prompt_text_.size());
  // The prompt's text changed with what follows: decode the completion alone.
  return tok_.Decode(std::vector<int32_t>(ids_.begin() + prompt_len_, ids_.end()));
}

std::string IncrementalText::Add(int32_t id) {
  if (stopped_) return "";
  ids_.push_back(id);
  const std::string now = DecodeRange(window_, ids_.size());
  if (!EndsInReplacement(window_text_) && now.compare(0, window_text_.size(), window_text_) == 0) {
    text_ = committed_ + now.substr(window_text_.size());
  } else {
    text_ = FullCompletionText();
  }
  if (!EndsInReplacement(text_)) {  // complete characters: the window moves on
    committed_ = text_;
    window_ = committed_end_ > 0 ? committed_end_ - 1 : 0;
    committed_end_ = ids_.size();
    window_text_ = DecodeRange(window_, committed_end_);
  }
  sent_ = std::min(sent_, text_.size());
  // The first stop sequence that appears ends the text (searched from what was not sent yet:
  // a match may begin inside held-back text only).
  size_t cut = std::string::npos;
  for (const auto& s : stop_) {
    const size_t from = sent_ >= s.size() ? sent_ - s.size() + 1 : 0;
    const size_t at = text_.find(s, from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    text_.resize(std::max(cut, sent_));
    stopped_ = true;
    return Flush();
  }
  // Hold back a suffix that is a proper prefix of some stop sequence, and a trailing U+FFFD.
  size_t safe = text_.size();
  for (const auto& s : stop_)
    for (size_t k = std::min(s.size() - 1, text_.size()); k > 0; --k)
      if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
        safe = std::min(safe, text_.size() - k);
        break;
      }
  if (EndsInReplacement(text_)) safe = std::min(safe, text_.size() - 3);
  if (safe <= sent_) return "";
  std::string out = text_.substr(sent_, safe - sent_);
  sent_ = safe;
  return out;
}

std::string IncrementalText::Flush() {
  if (sent_ >= text_.size()) return "";
  std::string out = text_.substr(sent_);
  sent_ = text_.size();
  return out;
}

}  // namespace ps::serve

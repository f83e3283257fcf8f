#include "worker/serve/logprobs_json.h"

namespace ps::serve {

namespace {

using nlohmann::json;

// Characters (code points) of UTF-8 text, as OpenAI's text_offset counts them.
int64_t Characters(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// A logprob as JSON: null when there is none, or NaN (JSON has no NaN).
json Value(std::optional<float> v) { return v && *v == *v ? json(*v) : json(); }

}  // namespace

LogprobsJson::LogprobsJson(const Tokenizer& tokenizer, bool chat, std::vector<int32_t> context)
    : tok_(tokenizer), chat_(chat), context_(std::move(context)) {}

json LogprobsJson::Format(const std::vector<TokenLogprob>& tokens) {
  json tokens_j = json::array(), lps = json::array(), tops = json::array(), offsets = json::array(),
       content = json::array();
  for (const TokenLogprob& t : tokens) {
    const std::string text = TokenText(tok_, context_, t.id);
    // An alternative's text in the same context (the chosen token's is already decoded).
    auto text_of = [&](int32_t id) { return id == t.id ? text : TokenText(tok_, context_, id); };
    if (chat_) {
      json alts = json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string a = text_of(id);
        alts.push_back({{"token", a}, {"logprob", Value(lp)}, {"bytes", Bytes(a)}});
      }
      content.push_back({{"token", text},
                         {"logprob", Value(t.logprob)},
                         {"bytes", Bytes(text)},
                         {"top_logprobs", alts}});
    } else {
      tokens_j.push_back(text);
      lps.push_back(Value(t.logprob));
      offsets.push_back(offset_);
      if (!t.logprob) {
        tops.push_back(nullptr);
      } else {
        // The most likely first, so a text two tokens share keeps the higher logprob; then the
        // chosen token, as OpenAI always includes it.
        json top = json::object();
        for (const auto& [id, lp] : t.top) {
          const std::string a = text_of(id);
          if (!top.contains(a)) top[a] = Value(lp);
        }
        if (!top.contains(text)) top[text] = Value(t.logprob);
        tops.push_back(top);
      }
    }
    offset_ += Characters(text);
    context_.push_back(t.id);
  }
  if (chat_) return {{"content", content}};
  return {{"tokens", tokens_j},
          {"token_logprobs", lps},
          {"top_logprobs", tops},
          {"text_offset", offsets}};
}

}  // namespace ps::serve

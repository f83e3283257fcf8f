#include "worker/serve/request_parse.h"

#include <algorithm>

namespace ps::serve {

namespace {

using nlohmann::json;

json ParseBody(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw BadRequest("the request body is not valid JSON: " + std::string(e.what()), "");
  }
  if (!j.is_object()) throw BadRequest("the request body must be a JSON object", "");
  return j;
}

double Number(const json& j, const char* key, double lo, double hi, double def) {
  if (!j.contains(key) || j[key].is_null()) return def;
  if (!j[key].is_number()) throw BadRequest(std::string("'") + key + "' must be a number", key);
  const double v = j[key].get<double>();
  if (!(v >= lo && v <= hi))
    throw BadRequest(std::string("'") + key + "' is " + j[key].dump() + "; it must be in [" +
                         json(lo).dump() + ", " + json(hi).dump() + "]",
                     key);
  return v;
}

bool Bool(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return false;
  if (!j[key].is_boolean())
    throw BadRequest(std::string("'") + key + "' must be true or false", key);
  return j[key].get<bool>();
}

// Fields shared by both endpoints. `prompt_len` is known, so max_tokens is checked against the
// context here.
void ParseCommon(const json& j, const ParseContext& ctx, bool chat, GenerationRequest& r) {
  r.chat = chat;
  if (r.prompt_ids.empty())
    throw BadRequest("the prompt is empty (no tokens)", chat ? "messages" : "prompt");
  const int64_t plen = static_cast<int64_t>(r.prompt_ids.size());
  // A prompt that fills the context leaves no room to generate: only an echoed one, scored with
  // max_tokens 0, may.
  if (plen > ctx.max_len || (plen == ctx.max_len && !r.echo))
    throw BadRequest("the prompt is " + std::to_string(plen) +
                         " tokens; this server's context is " + std::to_string(ctx.max_len) +
                         " tokens (prompt + completion): shorten the prompt",
                     chat ? "messages" : "prompt");
  const char* mt_key =
      chat && j.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (j.contains(mt_key) && !j[mt_key].is_null()) {
    // 0 only to score an echoed prompt (nothing generated).
    const int64_t least = r.echo ? 0 : 1;
    if (!j[mt_key].is_number_integer() || j[mt_key].get<int64_t>() < least)
      throw BadRequest(std::string("'") + mt_key + "' must be an integer >= 1" +
                           (chat ? "" : " (or 0 with \"echo\": true, to score the prompt)"),
                       mt_key);
    r.max_tokens = j[mt_key].get<int64_t>();
    if (plen + r.max_tokens > ctx.max_len)
      throw BadRequest("prompt (" + std::to_string(plen) + " tokens) + " + mt_key + " (" +
                           std::to_string(r.max_tokens) + ") exceed this server's context of " +
                           std::to_string(ctx.max_len) + " tokens: lower " + mt_key,
                       mt_key);
  } else {
    // OpenAI's defaults: 16 for completions; for chat, as much as the context allows.
    r.max_tokens = chat ? ctx.max_len - plen : std::min<int64_t>(16, ctx.max_len - plen);
  }
  r.sampling.temperature = Number(j, "temperature", 0.0, 2.0, 1.0);
  r.sampling.top_p = Number(j, "top_p", 0.0, 1.0, 1.0);
  if (r.sampling.top_p <= 0) throw BadRequest("'top_p' must be > 0", "top_p");
  r.adjust.frequency_penalty = Number(j, "frequency_penalty", -2.0, 2.0, 0.0);
  r.adjust.presence_penalty = Number(j, "presence_penalty", -2.0, 2.0, 0.0);
  r.adjust.repetition_penalty = Number(j, "repetition_penalty", 0.0, 10.0, 1.0);
  if (r.adjust.repetition_penalty <= 0)
    throw BadRequest("'repetition_penalty' must be > 0 (1 is none)", "repetition_penalty");
  if (j.contains("logit_bias") && !j["logit_bias"].is_null()) {
    const json& b = j["logit_bias"];
    if (!b.is_object())
      throw BadRequest("'logit_bias' must be an object of token id -> bias", "logit_bias");
    const int64_t vocab = ctx.tokenizer->vocab_size();
    for (const auto& [key, value] : b.items()) {
      int64_t id = -1;
      try {
        size_t used = 0;
        id = std::stoll(key, &used);
        if (used != key.size()) id = -1;
      } catch (const std::exception&) {
        id = -1;
      }
      if (id < 0 || id >= vocab)
        throw BadRequest("'logit_bias' key \"" + key + "\" is not a token id in [0, " +
                             std::to_string(vocab) + ")",
                         "logit_bias");
      if (!value.is_number() || !(value.get<double>() >= -100 && value.get<double>() <= 100))
        throw BadRequest("'logit_bias' values must be numbers in [-100, 100]", "logit_bias");
      r.adjust.logit_bias[static_cast<int32_t>(id)] = value.get<float>();
    }
  }
  if (j.contains("seed") && !j["seed"].is_null()) {
    if (!j["seed"].is_number_integer()) throw BadRequest("'seed' must be an integer", "seed");
    r.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
  }
  // Fields this server does not implement are refused rather than ignored.
  if (j.contains("best_of") && !j["best_of"].is_null() && j["best_of"] != 1)
    throw BadRequest("'best_of' must be 1 (one candidate per request)", "best_of");
  if (j.contains("suffix") && !j["suffix"].is_null() && j["suffix"] != "")
    throw BadRequest("'suffix' (insertion) is not supported by this server", "suffix");
  if (j.contains("tools") && !j["tools"].is_null() && !j["tools"].empty())
    throw BadRequest("'tools' (function calling) is not supported by this server", "tools");
  if (j.contains("response_format") && !j["response_format"].is_null() &&
      !(j["response_format"].is_object() && j["response_format"].value("type", "") == "text"))
    throw BadRequest(
        "'response_format' other than {\"type\": \"text\"} (structured output) is not "
        "supported by this server",
        "response_format");
  if (j.contains("stop") && !j["stop"].is_null()) {
    const json& s = j["stop"];
    if (s.is_string()) {
      r.stop.push_back(s.get<std::string>());
    } else if (s.is_array() && s.size() <= 4) {
      for (const auto& e : s) {
        if (!e.is_string()) throw BadRequest("'stop' entries must be strings", "stop");
        r.stop.push_back(e.get<std::string>());
      }
    } else {
      throw BadRequest("'stop' must be a string or an array of at most 4 strings", "stop");
    }
    for (const auto& s1 : r.stop)
      if (s1.empty()) throw BadRequest("'stop' strings must not be empty", "stop");
  }
  r.stream = Bool(j, "stream");
  if (j.contains("stream_options") && !j["stream_options"].is_null()) {
    if (!j["stream_options"].is_object())
      throw BadRequest("'stream_options' must be an object", "stream_options");
    r.include_usage = Bool(j["stream_options"], "include_usage");
  }
  r.ignore_eos = Bool(j, "ignore_eos");
  r.return_token_ids = Bool(j, "return_token_ids");
}

// An integer field in [0, kMaxLogprobs], or -1 when absent or null.
int64_t LogprobCount(const json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return -1;
  if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0 ||
      j[key].get<int64_t>() > kMaxLogprobs)
    throw BadRequest(std::string("'") + key + "' is " + j[key].dump() +
                         "; it must be an integer in [0, " + std::to_string(kMaxLogprobs) + "]",
                     key);
  return j[key].get<int64_t>();
}

// Token ids as given (no BOS added), each checked against the vocabulary; `field` names the
// request field in the error.
std::vector<int32_t> TokenIds(const json& p, int64_t vocab, const char* field) {
  std::vector<int32_t> ids;
  for (const auto& e : p) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= vocab)
      throw BadRequest(std::string("'") + field + "' token ids must be integers in [0, " +
                           std::to_string(vocab) + ")",
                       field);
    ids.push_back(e.get<int32_t>());
  }
  return ids;
}

// `n` copies of each parsed prompt's request, in the response's order, seeds spread (see the
// header); `n` and the total are checked against the context's limit.
std::vector<GenerationRequest> Choices(const json& j, const ParseContext& ctx,
                                       std::vector<GenerationRequest> prompts) {
  int64_t n = 1;
  if (j.contains("n") && !j["n"].is_null()) {
    if (!j["n"].is_number_integer() || j["n"].get<int64_t>() < 1)
      throw BadRequest("'n' must be an integer >= 1", "n");
    n = j["n"].get<int64_t>();
  }
  const int64_t total = n * static_cast<int64_t>(prompts.size());
  if (n > ctx.max_choices || total > ctx.max_choices)
    throw BadRequest("this request makes " + std::to_string(total) + " choices (" +
                         std::to_string(prompts.size()) + " prompts x n " + std::to_string(n) +
                         "); this server takes at most " + std::to_string(ctx.max_choices) +
                         " per request: split it",
                     "n");
  std::vector<GenerationRequest> out;
  for (const auto& p : prompts)
    for (int64_t k = 0; k < n; ++k) {
      GenerationRequest c = p;
      c.index = static_cast<int64_t>(out.size());
      c.n = n;
      if (c.seed) c.seed = *c.seed + static_cast<uint64_t>(k);
      out.push_back(std::move(c));
    }
  return out;
}

}  // namespace

std::vector<GenerationRequest> ParseCompletionRequest(const std::string& body,
                                                      const ParseContext& ctx) {
  const json j = ParseBody(body);
  if (!j.contains("prompt")) throw BadRequest("'prompt' is required", "prompt");
  const json& p = j["prompt"];
  // The prompts: a string or token ids, or an array of several of either.
  std::vector<json> given;
  if (p.is_string() || (p.is_array() && !p.empty() && p[0].is_number_integer())) {
    given.push_back(p);
  } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const json& e) {
               return e.is_string() || (e.is_array() && !e.empty());
             })) {
    given.assign(p.begin(), p.end());
  } else {
    throw BadRequest(
        "'prompt' must be a string, an array of token ids, or an array of strings or of "
        "token-id arrays (several prompts)",
        "prompt");
  }
  std::vector<GenerationRequest> prompts;
  for (const json& one : given) {
    GenerationRequest r;
    r.prompt_ids = one.is_string() ? ctx.tokenizer->EncodeForModel(one.get<std::string>())
                                   : TokenIds(one, ctx.tokenizer->vocab_size(), "prompt");
    r.echo = Bool(j, "echo");
    if (r.echo)
      r.echo_text = one.is_string() ? one.get<std::string>() : ctx.tokenizer->Decode(r.prompt_ids);
    r.logprobs = LogprobCount(j, "logprobs");
    ParseCommon(j, ctx, false, r);
    prompts.push_back(std::move(r));
  }
  return Choices(j, ctx, std::move(prompts));
}

namespace {

// A chat request's prompt: its messages rendered with the chat template, then tokenized for the
// model.
std::vector<int32_t> ChatPromptIds(const json& j, const ParseContext& ctx) {
  if (!j.contains("messages") || !j["messages"].is_array())
    throw BadRequest("'messages' is required: an array of {\"role\", \"content\"}", "messages");
  std::vector<ChatMessage> msgs;
  for (size_t i = 0; i < j["messages"].size(); ++i) {
    const json& m = j["messages"][i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw BadRequest(where + " must be an object with a string 'role'", "messages");
    ChatMessage cm{m["role"].get<std::string>(), ""};
    const json c = m.value("content", json());
    if (c.is_string()) {
      cm.content = c.get<std::string>();
    } else if (c.is_array()) {  // content parts: text only
      for (const auto& part : c) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string())
          throw BadRequest(where + ".content parts must be {\"type\": \"text\", \"text\": ...}",
                           "messages");
        cm.content += part["text"].get<std::string>();
      }
    } else {
      throw BadRequest(where + ".content must be a string or an array of text parts", "messages");
    }
    msgs.push_back(std::move(cm));
  }
  std::string prompt;
  try {
    prompt = RenderChat(ctx.chat_template, msgs);
  } catch (const Error& e) {
    throw BadRequest(e.what(), "messages");
  }
  return ctx.tokenizer->EncodeForModel(prompt);
}

}  // namespace

std::vector<GenerationRequest> ParseChatRequest(const std::string& body, const ParseContext& ctx) {
  const json j = ParseBody(body);
  GenerationRequest r;
  r.prompt_ids = ChatPromptIds(j, ctx);
  if (Bool(j, "logprobs")) {
    r.logprobs = std::max<int64_t>(0, LogprobCount(j, "top_logprobs"));
  } else if (LogprobCount(j, "top_logprobs") >= 0) {
    throw BadRequest("'top_logprobs' needs \"logprobs\": true", "top_logprobs");
  }
  ParseCommon(j, ctx, true, r);
  if (const std::string end = ChatTurnEnd(ctx.chat_template); !end.empty()) r.stop.push_back(end);
  return Choices(j, ctx, {std::move(r)});
}

std::vector<int32_t> ParseTokenizeRequest(const std::string& body, const ParseContext& ctx) {
  const json j = ParseBody(body);
  if (j.contains("messages")) return ChatPromptIds(j, ctx);
  if (!j.contains("prompt") || !j["prompt"].is_string())
    throw BadRequest("'prompt' (a string) or 'messages' is required", "prompt");
  const std::string text = j["prompt"].get<std::string>();
  const bool special = !j.contains("add_special_tokens") || j["add_special_tokens"].is_null() ||
                       Bool(j, "add_special_tokens");
  return special ? ctx.tokenizer->EncodeForModel(text) : ctx.tokenizer->Encode(text);
}

std::vector<int32_t> ParseDetokenizeRequest(const std::string& body, const ParseContext& ctx) {
  const json j = ParseBody(body);
  if (!j.contains("tokens") || !j["tokens"].is_array())
    throw BadRequest("'tokens' is required: an array of token ids", "tokens");
  return TokenIds(j["tokens"], ctx.tokenizer->vocab_size(), "tokens");
}

}  // namespace ps::serve

#include "worker/serve/completion_response.h"

#include <algorithm>
#include <atomic>
#include <chrono>

namespace ps::serve {

namespace {

using nlohmann::json;
using Clock = std::chrono::system_clock;

std::string NewId(const char* prefix) {
  static std::atomic<uint64_t> n{0};
  return std::string(prefix) + "-" +
         std::to_string(
             std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
                 .count()) +
         "-" + std::to_string(n++);
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
}

}  // namespace

CompletionResponse::CompletionResponse(bool chat, std::string model_name,
                                       const Tokenizer& tokenizer,
                                       const std::vector<GenerationRequest>& choices)
    : chat_(chat),
      model_(std::move(model_name)),
      id_(NewId(chat ? "chatcmpl" : "cmpl")),
      created_(NowSeconds()),
      n_(choices.front().n),
      include_usage_(choices.front().include_usage),
      with_ids_(choices.front().return_token_ids),
      logprobs_(choices.size()),
      first_chunk_(choices.size(), true),
      done_(choices.size(), false) {
  // Token texts need the tokens before them: the prompt, unless it is echoed and scored itself.
  for (size_t i = 0; i < choices.size(); ++i)
    if (choices[i].logprobs >= 0)
      logprobs_[i] = std::make_shared<LogprobsJson>(
          tokenizer, chat, choices[i].echo ? std::vector<int32_t>{} : choices[i].prompt_ids);
}

void CompletionResponse::Attach(std::vector<std::shared_ptr<RequestStream>> streams) {
  streams_ = std::move(streams);
}

void CompletionResponse::CancelAll() {
  for (const auto& s : streams_) s->Cancel();
}

// A request's token counts: each prompt once (a prompt's n choices share it), every choice's
// completion.
json CompletionResponse::Usage() const {
  int64_t prompt = 0, completion = 0;
  for (size_t i = 0; i < streams_.size(); ++i) {
    if (static_cast<int64_t>(i) % n_ == 0) prompt += streams_[i]->prompt_tokens;
    completion += streams_[i]->completion_tokens;
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

// Choice i's JSON for a full response, or for a streamed chunk.
json CompletionResponse::Choice(size_t i, bool chunk, const std::string& text, const json& finish,
                                const std::vector<TokenLogprob>& scored,
                                const std::vector<int32_t>& ids) {
  json c = {{"index", i}, {"finish_reason", finish}, {"logprobs", nullptr}};
  if (!chat_) {
    c["text"] = text;
  } else if (chunk) {
    json delta = json::object();
    if (first_chunk_[i]) delta["role"] = "assistant";
    if (!text.empty()) delta["content"] = text;
    c["delta"] = delta;
  } else {
    c["message"] = {{"role", "assistant"}, {"content", text}};
  }
  if (with_ids_) c["token_ids"] = ids;
  if (logprobs_[i]) c["logprobs"] = logprobs_[i]->Format(scored);
  return c;
}

std::optional<json> CompletionResponse::Collect(std::string* error) {
  json choices = json::array();
  for (size_t i = 0; i < streams_.size(); ++i) {
    std::string text;
    std::vector<int32_t> ids;
    std::vector<TokenLogprob> scored;
    StreamEvent last;
    for (;;) {
      auto e = streams_[i]->Next(std::chrono::milliseconds(1000));
      if (!e) continue;
      text += e->text;
      ids.insert(ids.end(), e->token_ids.begin(), e->token_ids.end());
      for (auto& t : e->logprobs) scored.push_back(std::move(t));
      if (e->done) {
        last = std::move(*e);
        break;
      }
    }
    if (last.finish_reason == "error") {
      CancelAll();
      *error = last.error;
      return std::nullopt;
    }
    choices.push_back(Choice(i, false, text, last.finish_reason, scored, ids));
  }
  return json{{"id", id_},           {"object", chat_ ? "chat.completion" : "text_completion"},
              {"created", created_}, {"model", model_},
              {"choices", choices},  {"usage", Usage()}};
}

bool CompletionResponse::StreamStep(const std::function<bool(const std::string&)>& write) {
  if (ended_) return true;
  auto send = [&](const json& j) {
    if (!write("data: " + j.dump() + "\n\n")) CancelAll();
  };
  const json base = {{"id", id_},
                     {"object", chat_ ? "chat.completion.chunk" : "text_completion"},
                     {"created", created_},
                     {"model", model_}};
  // Every ready event of every unfinished choice; when none is ready, one short wait on the
  // first unfinished choice (the next call looks at all of them again).
  bool sent = false;
  for (int pass = 0; pass < 2 && !sent; ++pass)
    for (size_t i = 0; i < streams_.size(); ++i) {
      if (done_[i]) continue;
      auto e = streams_[i]->Next(std::chrono::milliseconds(pass == 0 ? 0 : 50));
      if (!e && pass == 0) continue;
      if (!e) break;
      sent = true;
      if (e->done && e->finish_reason == "error") {
        send(
            {{"error", {{"message", "generation failed: " + e->error}, {"type", "server_error"}}}});
      } else {
        json chunk = base;
        chunk["choices"] =
            json::array({Choice(i, true, e->text, e->done ? json(e->finish_reason) : json(),
                                e->logprobs, e->token_ids)});
        send(chunk);
        first_chunk_[i] = false;
      }
      if (e->done) done_[i] = true;
      if (pass == 1) break;
    }
  if (!std::all_of(done_.begin(), done_.end(), [](bool d) { return d; })) return false;
  if (include_usage_) {
    json u = base;
    u["choices"] = json::array();
    u["usage"] = Usage();
    send(u);
  }
  write("data: [DONE]\n\n");
  ended_ = true;
  return true;
}

}  // namespace ps::serve

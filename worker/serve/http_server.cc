#include "worker/serve/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "worker/serve/logprobs_json.h"
#include "worker/serve/request_parse.h"

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

int64_t Now() {
  return std::chrono::duration_cast<std::chrono::seconds>(Clock::now().time_since_epoch()).count();
}

void SendError(httplib::Response& res, int status, const std::string& message,
               const std::string& type, const std::string& param = "") {
  json e = {{"message", message}, {"type", type}, {"code", status}};
  e["param"] = param.empty() ? json() : json(param);
  res.status = status;
  res.set_content(json{{"error", e}}.dump(), "application/json");
}

// A request's token counts: each prompt once (a prompt's n choices share it), every choice's
// completion.
json Usage(const std::vector<std::shared_ptr<RequestStream>>& streams, int64_t n) {
  int64_t prompt = 0, completion = 0;
  for (size_t i = 0; i < streams.size(); ++i) {
    if (static_cast<int64_t>(i) % n == 0) prompt += streams[i]->prompt_tokens;
    completion += streams[i]->completion_tokens;
  }
  return {{"prompt_tokens", prompt},
          {"completion_tokens", completion},
          {"total_tokens", prompt + completion}};
}

// One choice's JSON for a full response, or a streamed chunk.
json Choice(bool chat, bool chunk, const std::string& text, const json& finish, bool first) {
  json c = {{"index", 0}, {"finish_reason", finish}, {"logprobs", nullptr}};
  if (!chat) {
    c["text"] = text;
  } else if (chunk) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty()) delta["content"] = text;
    c["delta"] = delta;
  } else {
    c["message"] = {{"role", "assistant"}, {"content", text}};
  }
  return c;
}

}  // namespace

HttpFrontend::HttpFrontend(Scheduler& scheduler, ServeMetrics& metrics, ServedModel model,
                           const HttpOptions& options)
    : scheduler_(scheduler),
      metrics_(metrics),
      model_(std::move(model)),
      options_(options),
      server_(std::make_unique<httplib::Server>()) {
  const int threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(16 << 20);
  Routes();
}

HttpFrontend::~HttpFrontend() { Stop(); }

int HttpFrontend::Bind() {
  int port = options_.port;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
  } else if (!server_->bind_to_port(options_.host, port)) {
    port = -1;
  }
  if (port <= 0)
    throw Error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                " (in use? try another --port)");
  return port;
}

void HttpFrontend::Listen() { server_->listen_after_bind(); }

void HttpFrontend::Stop() {
  if (server_) server_->stop();
}

void HttpFrontend::Routes() {
  server_->Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(json{{"status", "ok"}, {"model", model_.name}}.dump(), "application/json");
  });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.Render(), "text/plain; version=0.0.4");
  });
  server_->Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json m = {{"id", model_.name},
              {"object", "model"},
              {"created", Now()},
              {"owned_by", "psserve"},
              {"max_model_len", model_.max_len},
              {"artifact", model_.artifact}};
    res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(),
                    "application/json");
  });

  auto generate = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      const std::string endpoint = chat ? "chat_completions" : "completions";
      ParseContext ctx{model_.tokenizer, model_.chat_template, model_.max_len,
                       options_.max_choices};
      std::vector<GenerationRequest> choices;
      try {
        choices = chat ? ParseChatRequest(req.body, ctx) : ParseCompletionRequest(req.body, ctx);
      } catch (const BadRequest& e) {
        SendError(res, 400, e.what(), "invalid_request_error", e.param());
        metrics_.Request(endpoint, 400);
        return;
      }
      const GenerationRequest& first = choices.front();
      const bool stream = first.stream, include_usage = first.include_usage,
                 with_ids = first.return_token_ids;
      const int64_t n = first.n;
      // The logprobs objects per choice, formatted here (token texts need the tokens before
      // them).
      std::vector<std::shared_ptr<LogprobsJson>> lpj(choices.size());
      for (size_t i = 0; i < choices.size(); ++i)
        if (choices[i].logprobs >= 0)
          lpj[i] = std::make_shared<LogprobsJson>(
              *model_.tokenizer, chat,
              choices[i].echo ? std::vector<int32_t>{} : choices[i].prompt_ids);
      auto streams = std::make_shared<std::vector<std::shared_ptr<RequestStream>>>(
          scheduler_.SubmitAll(std::move(choices)));
      if (streams->empty()) {
        SendError(res, 429, "the server's queue is full; retry later", "rate_limit_error");
        metrics_.Request(endpoint, 429);
        return;
      }
      const std::string id = NewId(chat ? "chatcmpl" : "cmpl");
      const std::string object = chat ? "chat.completion" : "text_completion";
      const int64_t created = Now();
      if (!stream) {
        json out = json::array();
        for (size_t i = 0; i < streams->size(); ++i) {
          const auto& s = (*streams)[i];
          std::string text;
          json ids = json::array();
          std::vector<TokenLogprob> scored;
          StreamEvent last;
          for (;;) {
            auto e = s->Next(std::chrono::milliseconds(1000));
            if (!e) continue;
            text += e->text;
            for (auto t : e->token_ids) ids.push_back(t);
            for (auto& t : e->logprobs) scored.push_back(std::move(t));
            if (e->done) {
              last = std::move(*e);
              break;
            }
          }
          if (last.finish_reason == "error") {
            for (const auto& other : *streams) other->Cancel();
            SendError(res, 500, "generation failed: " + last.error, "server_error");
            metrics_.Request(endpoint, 500);
            return;
          }
          json choice = Choice(chat, false, text, last.finish_reason, false);
          choice["index"] = i;
          if (with_ids) choice["token_ids"] = ids;
          if (lpj[i]) choice["logprobs"] = lpj[i]->Format(scored);
          out.push_back(std::move(choice));
        }
        json body = {{"id", id},           {"object", object},
                     {"created", created}, {"model", model_.name},
                     {"choices", out},     {"usage", Usage(*streams, n)}};
        res.set_content(body.dump(), "application/json");
        metrics_.Request(endpoint, 200);
        return;
      }
      metrics_.Request(endpoint, 200);
      const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
      // Per choice: whether its first chunk (with the role) is still to come, and whether it is
      // done; the choices' events are sent as they come, in turn.
      auto first_chunk = std::make_shared<std::vector<bool>>(streams->size(), true);
      auto done = std::make_shared<std::vector<bool>>(streams->size(), false);
      auto ended = std::make_shared<bool>(false);
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, streams, id, chunk_object, created, chat, include_usage, with_ids, lpj, n,
           first_chunk, done, ended](size_t, httplib::DataSink& sink) {
            if (*ended) {
              sink.done();
              return true;
            }
            auto cancel_all = [&] {
              for (const auto& s : *streams) s->Cancel();
            };
            auto send = [&](const json& j) {
              const std::string line = "data: " + j.dump() + "\n\n";
              if (!sink.write(line.data(), line.size())) cancel_all();
            };
            json base = {
                {"id", id}, {"object", chunk_object}, {"created", created}, {"model", model_.name}};
            // Every ready event of every unfinished choice; if none is ready, wait a little on
            // the first unfinished one.
            bool sent = false;
            for (int pass = 0; pass < 2 && !sent; ++pass)
              for (size_t i = 0; i < streams->size(); ++i) {
                if ((*done)[i]) continue;
                auto e = (*streams)[i]->Next(std::chrono::milliseconds(pass == 0 ? 0 : 50));
                if (!e && pass == 0) continue;
                if (!e) break;
                sent = true;
                if (e->done && e->finish_reason == "error") {
                  send({{"error",
                         {{"message", "generation failed: " + e->error},
                          {"type", "server_error"}}}});
                } else {
                  json choice =
                      Choice(chat, true, e->text, e->done ? json(e->finish_reason) : json(),
                             (*first_chunk)[i]);
                  choice["index"] = i;
                  if (with_ids) choice["token_ids"] = e->token_ids;
                  if (lpj[i]) choice["logprobs"] = lpj[i]->Format(e->logprobs);
                  json chunk = base;
                  chunk["choices"] = json::array({choice});
                  send(chunk);
                  (*first_chunk)[i] = false;
                }
                if (e->done) (*done)[i] = true;
                if (pass == 1) break;  // one wait per call: the next call looks at all again
              }
            if (std::all_of(done->begin(), done->end(), [](bool d) { return d; })) {
              if (include_usage) {
                json u = base;
                u["choices"] = json::array();
                u["usage"] = Usage(*streams, n);
                send(u);
              }
              const std::string fin = "data: [DONE]\n\n";
              sink.write(fin.data(), fin.size());
              *ended = true;
              sink.done();
            }
            return true;
          },
          [streams](bool success) {
            if (!success)
              for (const auto& s : *streams) s->Cancel();
          });
    };
  };
  server_->Post("/v1/completions", generate(false));
  server_->Post("/v1/chat/completions", generate(true));
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (res.status == 404)
      SendError(res, 404,
                "no route " + req.method + " " + req.path +
                    " (POST /v1/completions, POST /v1/chat/completions, GET /v1/models, "
                    "GET /health, GET /metrics)",
                "not_found_error");
  });
}

}  // namespace ps::serve

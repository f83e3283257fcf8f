#include "worker/serve/http_server.h"

#include <httplib.h>

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

json Usage(const RequestStream& s) {
  return {{"prompt_tokens", s.prompt_tokens},
          {"completion_tokens", s.completion_tokens},
          {"total_tokens", s.prompt_tokens + s.completion_tokens}};
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
      ParseContext ctx{model_.tokenizer, model_.chat_template, model_.max_len};
      GenerationRequest gr;
      try {
        gr = chat ? ParseChatRequest(req.body, ctx) : ParseCompletionRequest(req.body, ctx);
      } catch (const BadRequest& e) {
        SendError(res, 400, e.what(), "invalid_request_error", e.param());
        metrics_.Request(endpoint, 400);
        return;
      }
      const bool stream = gr.stream, include_usage = gr.include_usage,
                 with_ids = gr.return_token_ids;
      // The logprobs objects, formatted here (token texts need the tokens before them).
      std::shared_ptr<LogprobsJson> lpj;
      if (gr.logprobs >= 0)
        lpj = std::make_shared<LogprobsJson>(*model_.tokenizer, chat,
                                             gr.echo ? std::vector<int32_t>{} : gr.prompt_ids);
      auto s = scheduler_.Submit(std::move(gr));
      if (!s) {
        SendError(res, 429, "the server's queue is full; retry later", "rate_limit_error");
        metrics_.Request(endpoint, 429);
        return;
      }
      const std::string id = NewId(chat ? "chatcmpl" : "cmpl");
      const std::string object = chat ? "chat.completion" : "text_completion";
      const int64_t created = Now();
      if (!stream) {
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
          SendError(res, 500, "generation failed: " + last.error, "server_error");
          metrics_.Request(endpoint, 500);
          return;
        }
        json choice = Choice(chat, false, text, last.finish_reason, false);
        if (with_ids) choice["token_ids"] = ids;
        if (lpj) choice["logprobs"] = lpj->Format(scored);
        json body = {{"id", id},
                     {"object", object},
                     {"created", created},
                     {"model", model_.name},
                     {"choices", json::array({choice})},
                     {"usage", Usage(*s)}};
        res.set_content(body.dump(), "application/json");
        metrics_.Request(endpoint, 200);
        return;
      }
      metrics_.Request(endpoint, 200);
      const std::string chunk_object = chat ? "chat.completion.chunk" : "text_completion";
      auto first = std::make_shared<bool>(true);
      auto ended = std::make_shared<bool>(false);
      res.set_chunked_content_provider(
          "text/event-stream",
          [this, s, id, chunk_object, created, chat, include_usage, with_ids, lpj, first, ended](
              size_t, httplib::DataSink& sink) {
            if (*ended) {
              sink.done();
              return true;
            }
            auto e = s->Next(std::chrono::milliseconds(200));
            if (!e) return true;  // nothing yet: called again
            auto send = [&](const json& j) {
              const std::string line = "data: " + j.dump() + "\n\n";
              if (!sink.write(line.data(), line.size())) s->Cancel();
            };
            json base = {
                {"id", id}, {"object", chunk_object}, {"created", created}, {"model", model_.name}};
            if (e->done && e->finish_reason == "error") {
              send({{"error",
                     {{"message", "generation failed: " + e->error}, {"type", "server_error"}}}});
            } else {
              json choice =
                  Choice(chat, true, e->text, e->done ? json(e->finish_reason) : json(), *first);
              if (with_ids) choice["token_ids"] = e->token_ids;
              if (lpj) choice["logprobs"] = lpj->Format(e->logprobs);
              json chunk = base;
              chunk["choices"] = json::array({choice});
              send(chunk);
              *first = false;
              if (e->done && include_usage) {
                json u = base;
                u["choices"] = json::array();
                u["usage"] = Usage(*s);
                send(u);
              }
            }
            if (e->done) {
              const std::string fin = "data: [DONE]\n\n";
              sink.write(fin.data(), fin.size());
              *ended = true;
              sink.done();
            }
            return true;
          },
          [s](bool success) {
            if (!success) s->Cancel();
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

#include "worker/serve/http_server.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "worker/serve/completion_response.h"
#include "worker/serve/request_parse.h"

namespace ps::serve {

namespace {

using nlohmann::json;
using Clock = std::chrono::system_clock;

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

int64_t HttpFrontend::MaxChoices() const {
  // A queue of 0 still parses one choice, so that such a request gets the queue's 429.
  return std::min(options_.max_choices, std::max<int64_t>(1, scheduler_.max_waiting()));
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

  // vLLM's /tokenize and /detokenize, so a client can count and read tokens as the server does.
  auto tokens = [this](bool encode) {
    return [this, encode](const httplib::Request& req, httplib::Response& res) {
      ParseContext ctx{model_.tokenizer, model_.chat_template, model_.max_len, MaxChoices()};
      try {
        json out;
        if (encode) {
          const auto ids = ParseTokenizeRequest(req.body, ctx);
          out = {{"tokens", ids}, {"count", ids.size()}, {"max_model_len", model_.max_len}};
        } else {
          out = {{"prompt", model_.tokenizer->Decode(ParseDetokenizeRequest(req.body, ctx))}};
        }
        res.set_content(out.dump(), "application/json");
      } catch (const BadRequest& e) {
        SendError(res, 400, e.what(), "invalid_request_error", e.param());
      }
    };
  };
  server_->Post("/tokenize", tokens(true));
  server_->Post("/detokenize", tokens(false));

  auto generate = [this](bool chat) {
    return [this, chat](const httplib::Request& req, httplib::Response& res) {
      const std::string endpoint = chat ? "chat_completions" : "completions";
      ParseContext ctx{model_.tokenizer, model_.chat_template, model_.max_len, MaxChoices()};
      std::vector<GenerationRequest> choices;
      try {
        choices = chat ? ParseChatRequest(req.body, ctx) : ParseCompletionRequest(req.body, ctx);
      } catch (const BadRequest& e) {
        SendError(res, 400, e.what(), "invalid_request_error", e.param());
        metrics_.Request(endpoint, 400);
        return;
      }
      const bool stream = choices.front().stream;
      auto answer =
          std::make_shared<CompletionResponse>(chat, model_.name, *model_.tokenizer, choices);
      auto streams = scheduler_.SubmitAll(std::move(choices));
      if (streams.empty()) {
        SendError(res, 429, "the server's queue is full; retry later", "rate_limit_error");
        metrics_.Request(endpoint, 429);
        return;
      }
      answer->Attach(std::move(streams));
      if (!stream) {
        std::string error;
        const auto body = answer->Collect(&error);
        if (!body) {
          SendError(res, 500, "generation failed: " + error, "server_error");
          metrics_.Request(endpoint, 500);
          return;
        }
        res.set_content(body->dump(), "application/json");
        metrics_.Request(endpoint, 200);
        return;
      }
      metrics_.Request(endpoint, 200);
      res.set_chunked_content_provider(
          "text/event-stream",
          [answer](size_t, httplib::DataSink& sink) {
            const bool ended = answer->StreamStep(
                [&](const std::string& data) { return sink.write(data.data(), data.size()); });
            if (ended) sink.done();
            return true;
          },
          [answer](bool success) {
            if (!success) answer->CancelAll();
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
                    "POST /tokenize, POST /detokenize, GET /health, GET /metrics)",
                "not_found_error");
  });
}

}  // namespace ps::serve

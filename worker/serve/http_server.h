// The HTTP face of psserve (cpp-httplib): OpenAI's POST /v1/completions and
// /v1/chat/completions (JSON, or server-sent events with "stream": true), GET /v1/models,
// GET /health and GET /metrics (Prometheus). Bad requests get 400 with an OpenAI-style error
// body naming the field; a full queue gets 429; unknown paths 404.
#pragma once

#include <memory>
#include <string>

#include "worker/serve/chat_template.h"
#include "worker/serve/scheduler.h"
#include "worker/serve/serve_metrics.h"

namespace httplib {
class Server;
}

namespace ps::serve {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;   // 0: any free port (Bind returns it)
  int threads = 64;  // connections served at once
  // Choices (prompts x n) one request may make; never more than the scheduler's queue holds
  // (it must take them all at once), whatever this says.
  int64_t max_choices = kMaxChoices;
};

struct ServedModel {
  std::string name;
  std::string artifact;
  const Tokenizer* tokenizer = nullptr;
  ChatTemplate chat_template = ChatTemplate::kPlain;
  int64_t max_len = 2048;
};

class HttpFrontend {
 public:
  HttpFrontend(Scheduler& scheduler, ServeMetrics& metrics, ServedModel model,
               const HttpOptions& options);
  ~HttpFrontend();
  // Binds the socket; returns the port (useful with port 0). ps::Error when it cannot bind.
  int Bind();
  // Serves until Stop() (blocks).
  void Listen();
  void Stop();

 private:
  void Routes();
  int64_t MaxChoices() const;
  Scheduler& scheduler_;
  ServeMetrics& metrics_;
  ServedModel model_;
  HttpOptions options_;
  std::unique_ptr<httplib::Server> server_;
};

}  // namespace ps::serve

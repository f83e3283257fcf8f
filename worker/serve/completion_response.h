// The answer to one completions or chat completions request once its choices are queued: the
// whole JSON response (OpenAI's text_completion / chat.completion), or its server-sent events
// (chunks as each choice's tokens come, the usage chunk, [DONE]). No HTTP here: the frontend
// (http_server.h) sends what this builds.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "worker/serve/logprobs_json.h"
#include "worker/serve/request_parse.h"
#include "worker/serve/scheduler.h"

namespace ps::serve {

class CompletionResponse {
 public:
  // `choices` as parsed (before they are submitted): what the response needs of them is kept.
  CompletionResponse(bool chat, std::string model_name, const Tokenizer& tokenizer,
                     const std::vector<GenerationRequest>& choices);
  // The choices' streams, in choice order, from Scheduler::SubmitAll.
  void Attach(std::vector<std::shared_ptr<RequestStream>> streams);

  // Waits for every choice and returns the response body; when a choice failed, returns
  // nothing and sets `error` (the others are cancelled).
  std::optional<nlohmann::json> Collect(std::string* error);

  // Writes the events that are ready (waiting briefly when none is) through `write`, which
  // returns false when the client is gone (then every choice is cancelled). True once the last
  // event ([DONE]) was written.
  bool StreamStep(const std::function<bool(const std::string&)>& write);

  // Stops every choice (the client went away).
  void CancelAll();

 private:
  nlohmann::json Choice(size_t i, bool chunk, const std::string& text, const nlohmann::json& finish,
                        const std::vector<TokenLogprob>& scored, const std::vector<int32_t>& ids);
  nlohmann::json Usage() const;

  bool chat_;
  std::string model_;
  std::string id_;
  int64_t created_;
  int64_t n_;
  bool include_usage_, with_ids_;
  std::vector<std::shared_ptr<LogprobsJson>> logprobs_;  // per choice, when asked for
  std::vector<std::shared_ptr<RequestStream>> streams_;
  std::vector<bool> first_chunk_, done_;  // streaming: per choice
  bool ended_ = false;
};

}  // namespace ps::serve

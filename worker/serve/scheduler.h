// Continuous batching: one thread owns the engine. Each iteration it admits waiting requests
// into free KV slots (one prefill each, which also yields their first token), then runs one
// decode step for every running request together; a request leaves as soon as it finishes and
// its slot is free for the next one at the following iteration. The waiting queue is bounded:
// SubmitAll refuses (HTTP 429) when it is full.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "worker/serve/engine.h"
#include "worker/serve/request_parse.h"
#include "worker/serve/serve_metrics.h"
#include "worker/serve/token_logprobs.h"
#include "worker/tokenizers/tokenizer.h"

namespace ps::serve {

// What the HTTP side reads from a running request, in order.
struct StreamEvent {
  std::string text;                // newly released completion text (may be empty)
  std::vector<int32_t> token_ids;  // tokens generated since the last event
  bool done = false;
  std::string finish_reason;  // "stop" | "length" | "error" when done
  std::string error;          // when finish_reason == "error"
  // With the request's `logprobs`: one entry per token this event reports, in order (the
  // echoed prompt's tokens in the first event, then the generated ones as in token_ids).
  std::vector<TokenLogprob> logprobs;
};

// Shared by the scheduler (producer) and one HTTP handler (consumer).
class RequestStream {
 public:
  void Push(StreamEvent e);
  // Blocks for the next event; nullopt after the final one was taken or on timeout.
  std::optional<StreamEvent> Next(std::chrono::milliseconds timeout);
  // The client went away: the scheduler drops the request at its next step.
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;  // final once the done event was pushed

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  bool finished_ = false;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerOptions {
  int64_t max_waiting = 64;  // queued requests beyond the running ones; more get 429
};

class Scheduler {
 public:
  Scheduler(Engine& engine, const Tokenizer& tokenizer, ServeMetrics& metrics,
            const SchedulerOptions& options);
  ~Scheduler();  // stops the thread; requests still running end with finish_reason "error"
  // Queues all of one HTTP request's choices, or none (empty) when the queue has no room for all.
  std::vector<std::shared_ptr<RequestStream>> SubmitAll(std::vector<GenerationRequest> requests);
  void Stop();
  int64_t max_waiting() const { return options_.max_waiting; }

 private:
  struct Sequence;
  void Loop();
  // Sends token `id` (sampled for `s`, with its log-probability when the request asks), and
  // reports whether the sequence is finished.
  bool Emit(Sequence& s, int32_t id, std::optional<TokenLogprob> logprob = std::nullopt);
  // The next token of `s` from `row`, its logits ([vocab] fp32 on the CPU, adjusted in place
  // by the request's logit_bias and penalties): greedy or sampled.
  int32_t ChooseToken(Sequence& s, torch::Tensor row);
  // Prefills an admitted request into its slot and sends its echo and first token; false when
  // it is already finished (nothing to generate, or done at its first token).
  bool Admit(Sequence& s);
  void Finish(Sequence& s, const std::string& reason, const std::string& error = "");

  Engine& engine_;
  const Tokenizer& tok_;
  ServeMetrics& metrics_;
  SchedulerOptions options_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  bool stop_ = false;
  std::vector<std::unique_ptr<Sequence>> running_;  // the scheduler thread's only
  std::thread thread_;
};

}  // namespace ps::serve

#include "worker/serve/scheduler.h"

#include <algorithm>
#include <random>

#include "worker/serve/incremental_text.h"
#include "worker/serve/sampler.h"

namespace ps::serve {

using Clock = std::chrono::steady_clock;

void RequestStream::Push(StreamEvent e) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
  }
  cv_.notify_all();
}

std::optional<StreamEvent> RequestStream::Next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  if (finished_) return std::nullopt;
  if (!cv_.wait_for(lock, timeout, [&] { return !events_.empty(); })) return std::nullopt;
  StreamEvent e = std::move(events_.front());
  events_.pop_front();
  if (e.done) finished_ = true;
  return e;
}

struct Scheduler::Sequence {
  GenerationRequest req;
  std::shared_ptr<RequestStream> stream;
  std::unique_ptr<IncrementalText> text;
  std::mt19937_64 rng;
  int slot = -1;
  int32_t last = 0;                    // the token to feed at the next decode step
  std::vector<int32_t> generated_ids;  // kept when the request has penalties
  int64_t generated = 0;
  Clock::time_point submitted, last_token;
};

Scheduler::Scheduler(Engine& engine, const Tokenizer& tokenizer, ServeMetrics& metrics,
                     const SchedulerOptions& options)
    : engine_(engine), tok_(tokenizer), metrics_(metrics), options_(options) {
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& s : running_) Finish(*s, "error", "the server is shutting down");
  running_.clear();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& s : waiting_) Finish(*s, "error", "the server is shutting down");
  waiting_.clear();
}

std::vector<std::shared_ptr<RequestStream>> Scheduler::SubmitAll(
    std::vector<GenerationRequest> requests) {
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (auto& request : requests) {
    auto s = std::make_unique<Sequence>();
    s->stream = std::make_shared<RequestStream>();
    s->stream->prompt_tokens = static_cast<int64_t>(request.prompt_ids.size());
    s->rng.seed(request.seed ? *request.seed : std::random_device{}());
    s->req = std::move(request);
    s->submitted = Clock::now();
    streams.push_back(s->stream);
    seqs.push_back(std::move(s));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ || static_cast<int64_t>(waiting_.size() + seqs.size()) > options_.max_waiting)
      return {};
    for (auto& s : seqs) waiting_.push_back(std::move(s));
  }
  cv_.notify_all();
  return streams;
}

void Scheduler::Finish(Sequence& s, const std::string& reason, const std::string& error) {
  StreamEvent e;
  e.text = s.text ? s.text->Flush() : "";
  e.done = true;
  e.finish_reason = reason;
  e.error = error;
  s.stream->completion_tokens = s.generated;
  s.stream->Push(std::move(e));
  if (s.slot >= 0) engine_.kv().Release(s.slot);
  s.slot = -1;
  metrics_.RequestLatency(std::chrono::duration<double>(Clock::now() - s.submitted).count());
}

bool Scheduler::Emit(Sequence& s, int32_t id, std::optional<TokenLogprob> logprob) {
  const auto now = Clock::now();
  if (s.generated == 0) {
    metrics_.TimeToFirstToken(std::chrono::duration<double>(now - s.submitted).count());
  } else {
    metrics_.InterTokenLatency(std::chrono::duration<double>(now - s.last_token).count());
  }
  s.last_token = now;
  ++s.generated;
  s.last = id;
  if (!IsIdentity(s.req.adjust)) s.generated_ids.push_back(id);
  metrics_.GenerationTokens(1);
  const bool eos = !s.req.ignore_eos && tok_.eos_id() && id == *tok_.eos_id();
  StreamEvent e;
  e.token_ids = {id};
  if (logprob) e.logprobs.push_back(std::move(*logprob));
  if (!eos) e.text = s.text->Add(id);
  // The token just sampled goes into the cache at the next step: no room left means done.
  const bool full = engine_.kv().length(s.slot) >= engine_.max_len();
  if (eos || s.text->stopped()) {
    s.stream->Push(std::move(e));
    Finish(s, "stop");
    return true;
  }
  if (s.generated >= s.req.max_tokens || full) {
    s.stream->Push(std::move(e));
    Finish(s, "length");
    return true;
  }
  if (!e.text.empty() || s.req.return_token_ids || !e.logprobs.empty())
    s.stream->Push(std::move(e));
  return false;
}

int32_t Scheduler::ChooseToken(Sequence& s, torch::Tensor row) {
  AdjustLogits(row, s.req.adjust, s.req.prompt_ids, s.generated_ids);
  return SampleToken(row, s.req.sampling, s.rng);
}

bool Scheduler::Admit(Sequence& s) {
  s.slot = *engine_.kv().Acquire();  // free: admitted only up to the free slots
  const std::vector<int32_t>& ids = s.req.prompt_ids;
  s.text = std::make_unique<IncrementalText>(tok_, ids, s.req.stop);
  const bool score_prompt = s.req.echo && s.req.logprobs >= 0;
  torch::Tensor all;
  const auto t0 = Clock::now();
  const torch::Tensor logits = engine_.Prefill(s.slot, ids, score_prompt ? &all : nullptr);
  metrics_.PrefillTime(std::chrono::duration<double>(Clock::now() - t0).count());
  metrics_.PromptTokens(static_cast<int64_t>(ids.size()));
  if (s.req.echo) {
    StreamEvent e;
    e.text = s.req.echo_text;
    if (score_prompt) {
      // Nothing predicts the first token; position i's logits score token i + 1.
      e.logprobs.push_back(TokenLogprob{ids[0], std::nullopt, {}});
      const int64_t n = static_cast<int64_t>(ids.size());
      if (n > 1)
        for (auto& t :
             ScoreRows(all.narrow(0, 0, n - 1), {ids.begin() + 1, ids.end()}, s.req.logprobs))
          e.logprobs.push_back(std::move(t));
    }
    s.stream->Push(std::move(e));
  }
  if (s.req.max_tokens == 0) {  // only scoring the echoed prompt
    Finish(s, "length");
    return false;
  }
  // A copy: `logits` stays the model's for the logprobs.
  const int32_t id = ChooseToken(s, IsIdentity(s.req.adjust) ? logits : logits.clone());
  std::optional<TokenLogprob> lp;
  if (s.req.logprobs >= 0) lp = ScoreRows(logits.unsqueeze(0), {id}, s.req.logprobs)[0];
  return !Emit(s, id, std::move(lp));
}

void Scheduler::Loop() {
  for (;;) {
    std::vector<std::unique_ptr<Sequence>> admitted;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !waiting_.empty() || !running_.empty(); });
      if (stop_) return;
      const int64_t free_slots = engine_.kv().slots() - static_cast<int64_t>(running_.size());
      while (!waiting_.empty() && static_cast<int64_t>(admitted.size()) < free_slots) {
        admitted.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
    }
    // New requests: prefill each (its first token comes from the prompt's logits).
    for (auto& s : admitted) {
      if (s->stream->cancelled()) {
        Finish(*s, "error", "cancelled");
        continue;
      }
      try {
        if (Admit(*s)) running_.push_back(std::move(s));
      } catch (const std::exception& e) {
        Finish(*s, "error", e.what());
      }
    }
    // Drop requests whose client went away.
    for (auto& s : running_)
      if (s->stream->cancelled()) Finish(*s, "error", "cancelled");
    std::erase_if(running_, [](const auto& s) { return s->slot < 0; });
    if (!running_.empty()) {
      std::vector<int> slots;
      std::vector<int32_t> tokens;
      for (const auto& s : running_) {
        slots.push_back(s->slot);
        tokens.push_back(s->last);
      }
      try {
        const auto t0 = Clock::now();
        const torch::Tensor logits = engine_.Decode(slots, tokens);
        // Greedy rows need only the argmax (torch's, as SampleToken takes it): taken where the
        // logits are, so a greedy step copies n ids, not n x vocab logits; sampled rows and rows
        // with logit adjustments copy their logits.
        const torch::Tensor argmax = logits.argmax(-1).to(torch::kCPU);
        auto on_cpu = [](const Sequence& s) {
          return !IsGreedy(s.req.sampling) || !IsIdentity(s.req.adjust);
        };
        std::vector<int64_t> sampled;
        for (size_t i = 0; i < running_.size(); ++i)
          if (on_cpu(*running_[i])) sampled.push_back(static_cast<int64_t>(i));
        torch::Tensor sampled_logits;
        if (!sampled.empty())
          sampled_logits = logits.index_select(0, torch::tensor(sampled).to(logits.device()))
                               .to(torch::kCPU, torch::kFloat32);
        metrics_.DecodeStepTime(std::chrono::duration<double>(Clock::now() - t0).count());
        metrics_.BatchSize(static_cast<int64_t>(slots.size()));
        std::vector<int32_t> ids(running_.size());
        size_t next_sampled = 0;
        for (size_t i = 0; i < running_.size(); ++i) {
          Sequence& s = *running_[i];
          if (!on_cpu(s)) {
            ids[i] = static_cast<int32_t>(argmax[static_cast<int64_t>(i)].item<int64_t>());
            continue;
          }
          ids[i] = ChooseToken(s, sampled_logits[static_cast<int64_t>(next_sampled++)]);
        }
        // Rows whose request asks for logprobs: scored where the logits are, with the most
        // alternatives any of them wants (each keeps its own count).
        std::vector<int64_t> scored_rows;
        std::vector<int32_t> scored_ids;
        int64_t top = 0;
        for (size_t i = 0; i < running_.size(); ++i)
          if (running_[i]->req.logprobs >= 0) {
            scored_rows.push_back(static_cast<int64_t>(i));
            scored_ids.push_back(ids[i]);
            top = std::max(top, running_[i]->req.logprobs);
          }
        std::vector<TokenLogprob> scores;
        if (!scored_rows.empty())
          scores = ScoreRows(logits.index_select(0, torch::tensor(scored_rows).to(logits.device())),
                             scored_ids, top);
        size_t next_scored = 0;
        for (size_t i = 0; i < running_.size(); ++i) {
          Sequence& s = *running_[i];
          std::optional<TokenLogprob> lp;
          if (s.req.logprobs >= 0) {
            lp = std::move(scores[next_scored++]);
            lp->top.resize(static_cast<size_t>(
                std::min<int64_t>(s.req.logprobs, static_cast<int64_t>(lp->top.size()))));
          }
          Emit(s, ids[i], std::move(lp));
        }
      } catch (const std::exception& e) {
        for (auto& s : running_) Finish(*s, "error", e.what());
      }
      std::erase_if(running_, [](const auto& s) { return s->slot < 0; });
    }
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.State(static_cast<int64_t>(running_.size()), static_cast<int64_t>(waiting_.size()),
                   engine_.kv().used_tokens(), engine_.kv().capacity_tokens());
  }
}

}  // namespace ps::serve

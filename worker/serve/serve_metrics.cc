#include "worker/serve/serve_metrics.h"

namespace ps::serve {

namespace {
using T = MetricsRegistry::Type;
const std::vector<double> kLatency = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,  0.5,    1,     2.5,  5,     10,   30};
const std::vector<double> kBatch = {1, 2, 4, 8, 16, 32, 64, 128};
}  // namespace

ServeMetrics::ServeMetrics() {
  reg_.Declare("psserve_requests_total", T::kCounter, "HTTP requests by endpoint and status code");
  reg_.Declare("psserve_prompt_tokens_total", T::kCounter, "Prompt tokens prefilled");
  reg_.Declare("psserve_generation_tokens_total", T::kCounter, "Tokens generated");
  reg_.Declare("psserve_time_to_first_token_seconds", T::kHistogram,
               "From admission to the queue to the first generated token", kLatency);
  reg_.Declare("psserve_inter_token_latency_seconds", T::kHistogram,
               "Between consecutive tokens of one request", kLatency);
  reg_.Declare("psserve_request_latency_seconds", T::kHistogram, "From admission to the last token",
               kLatency);
  reg_.Declare("psserve_batch_size", T::kHistogram, "Requests in one decode step", kBatch);
  reg_.Declare("psserve_prefill_seconds", T::kHistogram, "One request's prefill", kLatency);
  reg_.Declare("psserve_decode_step_seconds", T::kHistogram, "One batched decode step", kLatency);
  reg_.Declare("psserve_requests_running", T::kGauge, "Requests holding a KV slot");
  reg_.Declare("psserve_requests_waiting", T::kGauge, "Requests queued for a KV slot");
  reg_.Declare("psserve_kv_cache_tokens", T::kGauge, "KV cache positions in use");
  reg_.Declare("psserve_kv_cache_capacity_tokens", T::kGauge, "KV cache positions in all slots");
  reg_.Declare("psserve_kv_cache_usage_ratio", T::kGauge, "KV cache positions in use / capacity");
  State(0, 0, 0, 0);
}

void ServeMetrics::Request(const std::string& endpoint, int status) {
  reg_.Add("psserve_requests_total", {{"endpoint", endpoint}, {"status", std::to_string(status)}});
}
void ServeMetrics::PromptTokens(int64_t n) {
  reg_.Add("psserve_prompt_tokens_total", {}, static_cast<double>(n));
}
void ServeMetrics::GenerationTokens(int64_t n) {
  reg_.Add("psserve_generation_tokens_total", {}, static_cast<double>(n));
}
void ServeMetrics::TimeToFirstToken(double s) {
  reg_.Observe("psserve_time_to_first_token_seconds", {}, s);
}
void ServeMetrics::InterTokenLatency(double s) {
  reg_.Observe("psserve_inter_token_latency_seconds", {}, s);
}
void ServeMetrics::RequestLatency(double s) {
  reg_.Observe("psserve_request_latency_seconds", {}, s);
}
void ServeMetrics::BatchSize(int64_t n) {
  reg_.Observe("psserve_batch_size", {}, static_cast<double>(n));
}
void ServeMetrics::PrefillTime(double s) { reg_.Observe("psserve_prefill_seconds", {}, s); }
void ServeMetrics::DecodeStepTime(double s) { reg_.Observe("psserve_decode_step_seconds", {}, s); }

void ServeMetrics::State(int64_t running, int64_t waiting, int64_t kv_used, int64_t kv_capacity) {
  reg_.Set("psserve_requests_running", {}, static_cast<double>(running));
  reg_.Set("psserve_requests_waiting", {}, static_cast<double>(waiting));
  reg_.Set("psserve_kv_cache_tokens", {}, static_cast<double>(kv_used));
  reg_.Set("psserve_kv_cache_capacity_tokens", {}, static_cast<double>(kv_capacity));
  reg_.Set("psserve_kv_cache_usage_ratio", {},
           kv_capacity ? static_cast<double>(kv_used) / static_cast<double>(kv_capacity) : 0.0);
}

}  // namespace ps::serve

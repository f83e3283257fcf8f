// psserve's Prometheus metrics (names in docs/serving.md), over the registry psd uses
// (server/metrics.h: text exposition format 0.0.4).
#pragma once

#include <cstdint>
#include <string>

#include "server/metrics.h"

namespace ps::serve {

class ServeMetrics {
 public:
  ServeMetrics();
  // One finished HTTP request of `endpoint` ("completions", "chat_completions", ...) with its
  // status code.
  void Request(const std::string& endpoint, int status);
  void PromptTokens(int64_t n);
  void GenerationTokens(int64_t n);
  void TimeToFirstToken(double seconds);
  void InterTokenLatency(double seconds);
  void RequestLatency(double seconds);
  void BatchSize(int64_t n);  // rows of one decode step
  void PrefillTime(double seconds);
  void DecodeStepTime(double seconds);
  // Gauges, set by the scheduler after every step.
  void State(int64_t running, int64_t waiting, int64_t kv_used, int64_t kv_capacity);
  std::string Render() const { return reg_.Render(); }

 private:
  MetricsRegistry reg_;
};

}  // namespace ps::serve

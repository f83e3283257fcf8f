// A small Prometheus metrics registry (prometheus-cpp is not packaged for Debian): gauges,
// counters and histograms with labels, rendered in the text exposition format 0.0.4. Names and
// labels are the contract of docs/metrics.md.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace ps {

using Labels = std::vector<std::pair<std::string, std::string>>;

class MetricsRegistry {
 public:
  enum class Type { kGauge, kCounter, kHistogram };
  // Declares a family; every family is declared once before use (throws ps::Error otherwise).
  void Declare(const std::string& name, Type type, const std::string& help,
               std::vector<double> buckets = {});
  void Set(const std::string& name, const Labels& labels, double value);
  void Add(const std::string& name, const Labels& labels, double delta = 1);
  void Observe(const std::string& name, const Labels& labels, double value);
  // Drops every series of a family (gauges recomputed at each scrape start from empty).
  void Clear(const std::string& name);
  std::string Render() const;

 private:
  struct Series {
    double value = 0;
    std::vector<uint64_t> bucket_counts;  // histograms: cumulative counts per bucket
    double sum = 0;
    uint64_t count = 0;
  };
  struct Family {
    Type type;
    std::string help;
    std::vector<double> buckets;
    std::map<Labels, Series> series;
  };
  Family& Get(const std::string& name, Type expected);
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// Formats a sample value the way Prometheus parses it (NaN, +Inf, -Inf, shortest round trip).
std::string FormatMetricValue(double v);
// Escapes a label value (backslash, double quote, newline).
std::string EscapeLabelValue(const std::string& v);

}  // namespace ps

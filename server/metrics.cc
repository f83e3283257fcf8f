#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "common/error.h"

namespace ps {

std::string FormatMetricValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string EscapeLabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

void MetricsRegistry::Declare(const std::string& name, Type type, const std::string& help,
                              std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  Family& f = families_[name];
  f.type = type;
  f.help = help;
  f.buckets = std::move(buckets);
}

MetricsRegistry::Family& MetricsRegistry::Get(const std::string& name, Type expected) {
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != expected)
    throw Error("metric " + name + " is not declared with that type");
  return it->second;
}

void MetricsRegistry::Set(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  Get(name, Type::kGauge).series[labels].value = value;
}

void MetricsRegistry::Add(const std::string& name, const Labels& labels, double delta) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type == Type::kHistogram)
    throw Error("metric " + name + " is not a declared counter or gauge");
  it->second.series[labels].value += delta;
}

void MetricsRegistry::Observe(const std::string& name, const Labels& labels, double value) {
  std::lock_guard lock(mu_);
  Family& f = Get(name, Type::kHistogram);
  Series& s = f.series[labels];
  if (s.bucket_counts.empty()) s.bucket_counts.assign(f.buckets.size(), 0);
  for (size_t i = 0; i < f.buckets.size(); ++i)
    if (value <= f.buckets[i]) ++s.bucket_counts[i];
  s.sum += value;
  ++s.count;
}

void MetricsRegistry::Clear(const std::string& name) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) it->second.series.clear();
}

namespace {

std::string LabelText(const Labels& labels, const std::string& extra_key = "",
                      const std::string& extra_value = "") {
  if (labels.empty() && extra_key.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += (first ? "" : ",") + k + "=\"" + EscapeLabelValue(v) + "\"";
    first = false;
  }
  if (!extra_key.empty()) out += (first ? "" : ",") + extra_key + "=\"" + extra_value + "\"";
  return out + "}";
}

}  // namespace

std::string MetricsRegistry::Render() const {
  std::lock_guard lock(mu_);
  std::ostringstream os;
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::kGauge     ? "gauge"
                       : f.type == Type::kCounter ? "counter"
                                                  : "histogram";
    os << "# HELP " << name << " " << f.help << "\n# TYPE " << name << " " << type << "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        os << name << LabelText(labels) << " " << FormatMetricValue(s.value) << "\n";
        continue;
      }
      for (size_t i = 0; i < f.buckets.size(); ++i)
        os << name << "_bucket" << LabelText(labels, "le", FormatMetricValue(f.buckets[i])) << " "
           << s.bucket_counts[i] << "\n";
      os << name << "_bucket" << LabelText(labels, "le", "+Inf") << " " << s.count << "\n";
      os << name << "_sum" << LabelText(labels) << " " << FormatMetricValue(s.sum) << "\n";
      os << name << "_count" << LabelText(labels) << " " << s.count << "\n";
    }
  }
  return os.str();
}

}  // namespace ps

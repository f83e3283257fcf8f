#include "client/psctl_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>

#include "common/error.h"
#include "common/progress.h"
#include "proto/spec_convert.h"

namespace ps {

namespace pb = proxsparse::v1;
using google::protobuf::util::TimeUtil;

OutputFormat ParseOutputFormat(const std::string& s) {
  if (s == "table") return OutputFormat::kTable;
  if (s == "json") return OutputFormat::kJson;
  if (s == "yaml") return OutputFormat::kYaml;
  throw Error("-o: '" + s + "' is not one of table | json | yaml");
}

std::string MessageToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.add_whitespace = true;
  o.preserve_proto_field_names = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(m, &out, o);
  if (!st.ok()) throw Error("cannot print as JSON: " + std::string(st.message()));
  return out;
}

std::string MessageToYaml(const google::protobuf::Message& m) {
  YAML::Node n = YAML::Load(MessageToJson(m));  // JSON is YAML; re-emit in block style
  YAML::Emitter e;
  e << n;
  return std::string(e.c_str()) + "\n";
}

std::string Render(const google::protobuf::Message& m, OutputFormat f) {
  return f == OutputFormat::kYaml ? MessageToYaml(m) : MessageToJson(m);
}

std::string EscapeControl(std::string_view s) {
  auto hex = [](unsigned char c) {
    static const char* d = "0123456789abcdef";
    return std::string("\\x") + d[c >> 4] + d[c & 15];
  };
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) {
      out += hex(c);
      ++i;
      continue;
    }
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    bool ok = n > 0 && c <= 0xf4 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    // U+0080..U+009F (C1 controls, e.g. CSI) are C2 80..C2 9F.
    if (ok && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) ok = false;
    if (!ok) {
      out += hex(c);
      ++i;
      continue;
    }
    out.append(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string FormatTable(const std::vector<std::vector<std::string>>& raw) {
  std::vector<std::vector<std::string>> rows = raw;
  for (auto& r : rows)
    for (auto& cell : r) cell = EscapeControl(cell);
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string Age(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  int64_t s = (TimeUtil::GetCurrentTime() - t).seconds();
  return FormatDuration(static_cast<double>(std::max<int64_t>(s, 0))) + " ago";
}

std::string HumanBytes(int64_t n) {
  char buf[32];
  if (n >= (1 << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", n / double(1 << 30));
  else if (n >= (1 << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", n / double(1 << 20));
  else if (n >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", n / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
  return buf;
}

namespace {

std::string Fixed(double v, int d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", d, v);
  return buf;
}

std::string StepText(const pb::Job& j) {
  if (!j.has_progress()) return "-";
  std::string s = std::to_string(j.progress().step());
  if (j.progress().total_steps() > 0) s += "/" + std::to_string(j.progress().total_steps());
  return s;
}

}  // namespace

std::string JobsTable(const std::vector<pb::Job>& jobs) {
  std::vector<std::vector<std::string>> rows = {
      {"ID", "NAME", "METHOD", "STATE", "ATTEMPT", "STEP", "LOSS", "N:M", "CREATED", "MESSAGE"}};
  for (const auto& j : jobs) {
    const auto& p = j.progress();
    std::string msg = j.message();
    if (msg.size() > 60) msg = msg.substr(0, 57) + "...";
    rows.push_back({j.id(), j.name().empty() ? "-" : j.name(), j.spec().method().name(),
                    JobStateName(j.state()),
                    std::to_string(j.attempt()) + "/" + std::to_string(j.max_attempts()),
                    StepText(j), p.has_loss() ? Fixed(p.loss(), 4) : "-",
                    p.has_nm_ratio() ? Fixed(p.nm_ratio() * 100, 1) + "%" : "-",
                    Age(j.create_time()), msg});
  }
  return FormatTable(rows);
}

std::string JobDetails(const pb::Job& j) {
  std::vector<std::vector<std::string>> rows = {
      {"id:", j.id()},
      {"name:", j.name()},
      {"state:", JobStateName(j.state())},
      {"message:", j.message()},
      {"method:", j.spec().method().name() + " " + j.spec().pattern()},
      {"model:", j.spec().model()},
      {"attempt:", std::to_string(j.attempt()) + " of " + std::to_string(j.max_attempts())},
      {"launcher:", j.launcher() + (j.launcher_id().empty() ? "" : " " + j.launcher_id())},
      {"created:", Age(j.create_time())},
      {"started:", Age(j.start_time())},
      {"ended:", Age(j.end_time())},
      {"heartbeat:", Age(j.heartbeat_time())},
      {"checkpoint:", j.checkpoint_step() >= 0 ? "step " + std::to_string(j.checkpoint_step()) +
                                                     " in " + j.checkpoint_dir()
                                               : "-"},
      {"outputs:", j.output_dir()},
      {"spec hash:", j.spec_hash()},
  };
  if (j.has_progress())
    rows.push_back(
        {"progress:", FormatProgressLine(ProgressFromProto(j.progress()), 0, j.spec().pattern())});
  std::string out = FormatTable(rows);
  if (j.history_size()) {
    out += "history:\n";
    std::vector<std::vector<std::string>> h;
    for (const auto& t : j.history())
      h.push_back(
          {"  " + TimeUtil::ToString(t.time()).substr(0, 19),
           (t.from() ? JobStateName(t.from()) : std::string("-")) + " -> " + JobStateName(t.to()),
           t.message()});
    out += FormatTable(h);
  }
  return out;
}

std::string ArtifactsTable(const pb::ListArtifactsResponse& a) {
  std::vector<std::vector<std::string>> rows = {{"PATH", "SIZE", "SHA256"}};
  for (const auto& x : a.artifacts())
    rows.push_back({x.path(), HumanBytes(x.size()), x.sha256().substr(0, 16)});
  return FormatTable(rows);
}

}  // namespace ps

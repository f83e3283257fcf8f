#include "client/psctl_format.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cstdio>

#include "common/error.h"
#include "common/progress.h"
#include "common/result_summary.h"
#include "proto/result_convert.h"
#include "proto/spec_convert.h"

namespace ps {

namespace pb = proxsparse::v1;
using google::protobuf::util::TimeUtil;

OutputFormat ParseOutputFormat(const std::string& s) {
  if (s == "table") return OutputFormat::kTable;
  if (s == "wide") return OutputFormat::kWide;
  if (s == "json") return OutputFormat::kJson;
  if (s == "yaml") return OutputFormat::kYaml;
  throw Error("-o: '" + s + "' is not one of table | wide | json | yaml");
}

bool IsTableFormat(OutputFormat f) { return f == OutputFormat::kTable || f == OutputFormat::kWide; }

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
  return JsonToYaml(nlohmann::ordered_json::parse(MessageToJson(m)));
}

bool IsPlainYamlSafe(const std::string& s) {
  // Plain only for word-like text that starts with a letter, '_' or '/': never a number,
  // timestamp, sexagesimal ("2:4"), float (".5", ".inf"), alias, tag, comment or indicator.
  if (s.empty()) return false;
  const char c0 = s.front();
  if (!(std::isalpha(static_cast<unsigned char>(c0)) || c0 == '_' || c0 == '/')) return false;
  if (s.back() == ' ') return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const bool ok = std::isalnum(c) || c == '_' || c == '.' || c == '/' || c == '-' ||
                    (c == ' ' && s[i + 1] != ' ');
    if (!ok) return false;
  }
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const char* kReserved[] = {"y",    "n",     "yes",  "no",  "on", "off",
                                    "true", "false", "null", "nan", "inf"};
  for (const char* r : kReserved)
    if (lower == r) return false;
  return true;
}

namespace {

std::string YamlScalar(const nlohmann::ordered_json& j) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    return IsPlainYamlSafe(s) ? s : j.dump();  // JSON's escapes are valid YAML double quotes
  }
  std::string s = j.dump();  // null, true/false, numbers (shortest round trip)
  // YAML 1.1 floats need a '.' in the mantissa: "1e-05" would read back as a string there.
  if (j.is_number_float() && s.find('.') == std::string::npos) {
    const size_t e = s.find_first_of("eE");
    if (e != std::string::npos) s.insert(e, ".0");
  }
  return s;
}

// A literal block keeps a multi-line text readable; only for text it reproduces exactly.
bool LiteralBlockSafe(const std::string& s) {
  if (s.size() < 2 || s.back() != '\n' || s[s.size() - 2] == '\n') return false;
  if (s.front() == ' ' || s.front() == '\n') return false;
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\n') || c == 0x7f) return false;
  for (size_t i = 0; i + 1 < s.size(); ++i)
    if (s[i] == ' ' && s[i + 1] == '\n') return false;  // trailing blanks are easily lost
  return true;
}

void EmitYaml(const nlohmann::ordered_json& j, int indent, std::string& out) {
  const std::string pad(static_cast<size_t>(indent), ' ');
  auto value_after_key = [&](const nlohmann::ordered_json& v) {
    if (v.is_object() && !v.empty()) {
      out += "\n";
      EmitYaml(v, indent + 2, out);
    } else if (v.is_array() && !v.empty()) {
      out += "\n";
      EmitYaml(v, indent, out);  // "- " items at the key's indentation, as kubectl prints them
    } else if (v.is_object()) {
      out += " {}\n";
    } else if (v.is_array()) {
      out += " []\n";
    } else if (v.is_string() && v.get_ref<const std::string&>().find('\n') != std::string::npos &&
               LiteralBlockSafe(v.get_ref<const std::string&>())) {
      out += " |\n";
      const auto& s = v.get_ref<const std::string&>();
      size_t start = 0;
      while (start < s.size()) {
        size_t nl = s.find('\n', start);
        std::string line = s.substr(start, nl - start);
        out += line.empty() ? "\n" : pad + "  " + line + "\n";
        start = nl + 1;
      }
    } else {
      out += " " + YamlScalar(v) + "\n";
    }
  };
  if (j.is_object()) {
    for (const auto& [k, v] : j.items()) {
      out += pad + YamlScalar(nlohmann::ordered_json(k)) + ":";
      value_after_key(v);
    }
  } else if (j.is_array()) {
    for (const auto& item : j) {
      if ((item.is_object() || item.is_array()) && !item.empty()) {
        std::string sub;
        EmitYaml(item, indent + 2, sub);
        out += pad + "- " + sub.substr(static_cast<size_t>(indent) + 2);
      } else {
        out += pad + "-";
        value_after_key(item);
      }
    }
  } else {
    out += pad + YamlScalar(j) + "\n";
  }
}

}  // namespace

std::string JsonToYaml(const nlohmann::ordered_json& j) {
  std::string out;
  EmitYaml(j, 0, out);
  return out;
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

// The N:M fraction to show: the published model's once the job has a result (the last training
// step's ratio is not what was published), else the last progress report's.
std::string NmText(const pb::Job& j) {
  if (j.has_result() && j.result().has_nm_fraction())
    return Fixed(j.result().nm_fraction() * 100, 1) + "%";
  if (j.progress().has_nm_ratio()) return Fixed(j.progress().nm_ratio() * 100, 1) + "%";
  return "-";
}

std::string BaselinesText(const pb::Job& j) {
  if (!j.has_result() || j.result().perplexity().empty()) return "-";
  std::string out;
  for (const auto& [m, p] : j.result().perplexity(0).baselines())
    out += (out.empty() ? "" : ",") + m + "=" + FormatPerplexity(p);
  return out.empty() ? "-" : out;
}

std::string TookText(const pb::Job& j) {
  if (j.has_result() && j.result().has_wall_seconds())
    return FormatDuration(j.result().wall_seconds());
  if (j.has_start_time() && j.has_end_time())
    return FormatDuration(static_cast<double>((j.end_time() - j.start_time()).seconds()));
  return "-";
}

}  // namespace

std::vector<std::string> ResultLines(const pb::Job& j) {
  if (!j.has_result()) return {};
  return FormatResultLines(ResultFromProto(j.result()));
}

std::string JobsTable(const std::vector<pb::Job>& jobs, bool wide) {
  std::vector<std::string> head = {"ID",   "NAME", "METHOD", "STATE", "ATTEMPT", "STEP",
                                   "LOSS", "N:M",  "PPL",    "TOOK",  "CREATED", "MESSAGE"};
  if (wide)
    head = {"ID",  "NAME", "METHOD",    "PATTERN", "STATE",    "ATTEMPT", "STEP",   "LOSS",
            "N:M", "PPL",  "BASELINES", "TOOK",    "LAUNCHER", "CREATED", "MESSAGE"};
  std::vector<std::vector<std::string>> rows = {head};
  for (const auto& j : jobs) {
    const auto& p = j.progress();
    std::string msg = j.message();
    if (!wide && msg.size() > 60) msg = msg.substr(0, 57) + "...";
    const std::string ppl = j.has_result() ? FormatResultCell(ResultFromProto(j.result())) : "-";
    const std::string attempt =
        std::to_string(j.attempt()) + "/" + std::to_string(j.max_attempts());
    const std::string loss = p.has_loss() ? Fixed(p.loss(), 4) : "-";
    if (wide)
      rows.push_back({j.id(), j.name().empty() ? "-" : j.name(), j.spec().method().name(),
                      j.spec().pattern(), JobStateName(j.state()), attempt, StepText(j), loss,
                      NmText(j), ppl, BaselinesText(j), TookText(j),
                      j.launcher() + (j.launcher_id().empty() ? "" : ":" + j.launcher_id()),
                      Age(j.create_time()), msg});
    else
      rows.push_back({j.id(), j.name().empty() ? "-" : j.name(), j.spec().method().name(),
                      JobStateName(j.state()), attempt, StepText(j), loss, NmText(j), ppl,
                      TookText(j), Age(j.create_time()), msg});
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
                      : j.result().checkpoints_removed() ? "- (removed after success)"
                                                         : "-"},
      {"outputs:", j.output_dir()},
      {"spec hash:", j.spec_hash()},
  };
  if (j.has_progress())
    rows.push_back(
        {"progress:", FormatProgressLine(ProgressFromProto(j.progress()), 0, j.spec().pattern())});
  if (j.has_result()) {
    rows.push_back({"N:M:", NmText(j) + " of target groups " + j.spec().pattern() +
                                " in the published model" +
                                (j.result().valid() ? "" : " (NOT valid)")});
    rows.push_back({"took:", TookText(j)});
    bool first = true;
    for (const auto& line : ResultLines(j)) {
      if (line.rfind("published:", 0) == 0) continue;  // shown as N:M and took above
      rows.push_back({first ? "perplexity:" : "", line});
      first = false;
    }
  }
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

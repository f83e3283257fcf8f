#include "server/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <atomic>
#include <nlohmann/json.hpp>

#include "proto/spec_convert.h"

namespace ps {

namespace {

std::atomic<LogFormat> g_format{LogFormat::kText};

// Text values are quoted when they hold spaces, quotes or '='; control characters are escaped so
// that a job name cannot forge log lines.
std::string TextValue(const std::string& v) {
  bool quote = v.empty();
  std::string out;
  for (unsigned char c : v) {
    if (c == ' ' || c == '=' || c == '"') quote = true;
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      quote = true;
    } else {
      out += static_cast<char>(c);
    }
  }
  return quote ? "\"" + out + "\"" : out;
}

}  // namespace

void InitLogging(LogFormat format) {
  g_format = format;
  auto logger = spdlog::get("psd");
  if (!logger) logger = spdlog::stderr_logger_mt("psd");
  // JSON lines carry their own timestamp and level.
  logger->set_pattern(format == LogFormat::kJson ? "%v" : "%Y-%m-%dT%H:%M:%S.%eZ %l %v",
                      spdlog::pattern_time_type::utc);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

std::string FormatLogLine(LogFormat format, const std::string& event, const LogFields& fields) {
  if (format == LogFormat::kJson) {
    nlohmann::json j;
    j["event"] = event;
    for (const auto& [k, v] : fields) j[k] = v;
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  std::string out = event;
  for (const auto& [k, v] : fields) out += " " + k + "=" + TextValue(v);
  return out;
}

void LogEvent(spdlog::level::level_enum level, const std::string& event, const LogFields& fields) {
  LogFormat f = g_format;
  if (f == LogFormat::kJson) {
    LogFields all = {{"ts", ""}, {"level", spdlog::level::to_string_view(level).data()}};
    auto now = std::chrono::system_clock::now();
    std::time_t t = std::chrono::system_clock::to_time_t(now);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    all[0].second = buf;
    all.insert(all.end(), fields.begin(), fields.end());
    spdlog::log(level, "{}", FormatLogLine(f, event, all));
  } else {
    spdlog::log(level, "{}", FormatLogLine(f, event, fields));
  }
}

void LogJobEvent(const proxsparse::v1::Job& job, const std::string& event) {
  auto level =
      job.state() == proxsparse::v1::JOB_STATE_FAILED ? spdlog::level::warn : spdlog::level::info;
  LogEvent(level, event,
           {{"job_id", job.id()},
            {"name", job.name()},
            {"state", JobStateName(job.state())},
            {"attempt", std::to_string(job.attempt())},
            {"message", job.message()}});
}

}  // namespace ps

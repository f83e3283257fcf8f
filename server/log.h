// psd's structured log (spdlog, to stderr): one line per event, named like "job.state", with
// key=value fields — text by default, one JSON object per line with --log-format json. Every job
// event (submitted, each state change, deleted), auth rejection and store failure is logged.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <utility>
#include <vector>

#include "proxsparse/v1/job.pb.h"

namespace ps {

using LogFields = std::vector<std::pair<std::string, std::string>>;

enum class LogFormat { kText, kJson };
void InitLogging(LogFormat format);
// "event k=v k2="v with spaces"" or {"ts":..., "level":..., "event":..., "k":"v"}.
void LogEvent(spdlog::level::level_enum level, const std::string& event, const LogFields& fields);
// A job event with the job's id, name, state, attempt and message.
void LogJobEvent(const proxsparse::v1::Job& job, const std::string& event);
// Renders one line without logging it (tests).
std::string FormatLogLine(LogFormat format, const std::string& event, const LogFields& fields);

}  // namespace ps

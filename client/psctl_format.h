// How psctl shows jobs: aligned tables for people, JSON / YAML (the API's field names) for
// scripts.
#pragma once

#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "proxsparse/v1/job_service.pb.h"

namespace ps {

// table: for people; wide: more columns; json / yaml: the API's messages for scripts.
enum class OutputFormat { kTable, kWide, kJson, kYaml };
OutputFormat ParseOutputFormat(const std::string& s);

std::string MessageToJson(const google::protobuf::Message& m);
std::string MessageToYaml(const google::protobuf::Message& m);
std::string Render(const google::protobuf::Message& m, OutputFormat f);
// Block-style YAML of a JSON value: maps and lists indented, strings quoted whenever a YAML 1.1
// or 1.2 parser could read them as anything but that string ("2:4" would be 124, "yes" true,
// "1e3" a number), multi-line strings as literal blocks. Numbers keep JSON's shortest form.
std::string JsonToYaml(const nlohmann::ordered_json& j);
// True when `s` may stand unquoted in YAML and still read back as this string.
bool IsPlainYamlSafe(const std::string& s);
bool IsTableFormat(OutputFormat f);

// Text from psd made safe for a terminal: control characters (C0, DEL, C1; ANSI escapes start
// with ESC) and invalid UTF-8 bytes become \xNN, so a job name cannot move the cursor, recolour
// or rewrite what psctl prints. Printable UTF-8 passes unchanged.
std::string EscapeControl(std::string_view s);
// Columns padded to their widest cell (cells escaped with EscapeControl).
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);
std::string JobsTable(const std::vector<proxsparse::v1::Job>& jobs, bool wide = false);
// "dense 4.76 -> pruned 7.90 (+66.0%)" lines of a finished job; empty when it has no result.
std::vector<std::string> ResultLines(const proxsparse::v1::Job& job);
std::string JobDetails(const proxsparse::v1::Job& job);
std::string ArtifactsTable(const proxsparse::v1::ListArtifactsResponse& a);
// "5s ago", "3m ago"; "-" for an unset time.
std::string Age(const google::protobuf::Timestamp& t);
std::string HumanBytes(int64_t n);

}  // namespace ps

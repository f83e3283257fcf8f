#include "worker/data/documents.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"
#include "worker/data/line_reader.h"

namespace ps {
namespace {

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string Where(const std::filesystem::path& path, size_t line) {
  return path.string() + ":" + std::to_string(line);
}

std::vector<std::string> SplitOnBlankLines(const std::string& text) {
  std::vector<std::string> docs;
  std::string cur;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    size_t end = nl == std::string::npos ? text.size() : nl;
    std::string_view line(text.data() + pos, end - pos);
    bool blank = line.find_first_not_of(" \t\r") == std::string_view::npos;
    if (blank) {
      if (!cur.empty()) docs.push_back(std::move(cur));
      cur.clear();
    } else {
      if (!cur.empty()) cur.push_back('\n');
      cur.append(line);
    }
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  if (!cur.empty()) docs.push_back(std::move(cur));
  return docs;
}

}  // namespace

bool IsJsonLinesPath(const std::filesystem::path& path) {
  std::string name = path.filename().string();
  if (EndsWith(name, ".gz")) name.resize(name.size() - 3);
  return EndsWith(name, ".jsonl") || EndsWith(name, ".json") || EndsWith(name, ".ndjson");
}

std::vector<std::string> ReadJsonLines(const std::filesystem::path& path,
                                       const DocumentReadOptions& options) {
  LineReader reader(path);
  std::vector<std::string> docs;
  std::string line;
  while (reader.Next(line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(Where(path, reader.line_number()) + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object())
      throw Error(Where(path, reader.line_number()) + ": expected a JSON object per line");
    auto it = j.find(options.text_key);
    if (it == j.end())
      throw Error(Where(path, reader.line_number()) + ": no \"" + options.text_key + "\" field");
    if (!it->is_string())
      throw Error(Where(path, reader.line_number()) + ": \"" + options.text_key +
                  "\" is not a string");
    docs.push_back(it->get<std::string>());
    if (options.max_documents && docs.size() >= options.max_documents) break;
  }
  return docs;
}

std::string ReadTextFile(const std::filesystem::path& path) { return ReadMaybeGzipFile(path); }

std::vector<std::string> ReadDocuments(const std::filesystem::path& path,
                                       const DocumentReadOptions& options) {
  if (IsJsonLinesPath(path)) return ReadJsonLines(path, options);
  std::string text = ReadTextFile(path);
  std::vector<std::string> docs;
  if (options.text_split == TextSplit::kWholeFile) {
    docs.push_back(std::move(text));
  } else {
    docs = SplitOnBlankLines(text);
  }
  if (options.max_documents && docs.size() > options.max_documents)
    docs.resize(options.max_documents);
  return docs;
}

DataFileInfo DescribeDataFile(const std::filesystem::path& path) {
  if (!std::filesystem::is_regular_file(path)) throw Error("data file not found: " + path.string());
  DataFileInfo info;
  info.path = path;
  info.bytes = std::filesystem::file_size(path);
  info.sha256 = Sha256File(path);
  return info;
}

}  // namespace ps

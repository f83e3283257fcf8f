#include "worker/tools/result_manifest.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/bounded_read.h"
#include "common/error.h"
#include "common/file_util.h"

namespace ps {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// What a job publishes: what psd lists as artifacts, less progress.jsonl (appended to by every
// attempt, so it cannot be pinned by a hash).
bool Published(const fs::path& rel) {
  if (rel == "progress.jsonl") return false;
  bool first = true;
  for (const auto& part : rel) {
    std::string p = part.string();
    if ((first && p == "checkpoints") || p.rfind('.', 0) == 0) return false;
    if (p.find(".tmp.") != std::string::npos) return false;
    first = false;
  }
  return true;
}

}  // namespace

void WriteResultManifest(const fs::path& out, const std::string& job_hash) {
  json files = json::array();
  std::vector<fs::path> paths;
  for (auto it = fs::recursive_directory_iterator(out); it != fs::end(it); ++it) {
    if (it->is_symlink() || !it->is_regular_file()) continue;
    fs::path rel = fs::relative(it->path(), out);
    if (Published(rel)) paths.push_back(rel);
  }
  std::sort(paths.begin(), paths.end());
  for (const auto& rel : paths)
    files.push_back({{"path", rel.generic_string()},
                     {"size", fs::file_size(out / rel)},
                     {"sha256", Sha256File(out / rel)}});
  json m = {{"format", "proxsparse-result-v1"}, {"job_hash", job_hash}, {"files", files}};
  WriteFileAtomic(out / kResultManifestName, m.dump(1));
}

AdoptionCheck CheckResultManifest(const fs::path& out, const std::string& job_hash) {
  AdoptionCheck c;
  fs::path file = out / kResultManifestName;
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(file, ec))) return c;
  c.present = true;
  try {
    json m = json::parse(ReadRegularFileBounded(file, kMaxMetadataBytes, "result manifest"));
    if (m.value("format", "") != "proxsparse-result-v1") {
      c.why = "unknown format";
      return c;
    }
    if (m.value("job_hash", "") != job_hash) {
      c.why = "written for another job spec (job_hash differs)";
      return c;
    }
    const json& files = m.at("files");
    bool has_report = false;
    for (const auto& f : files) {
      fs::path rel = f.at("path").get<std::string>();
      if (rel.is_absolute() || !Published(rel) ||
          std::any_of(rel.begin(), rel.end(), [](const fs::path& p) { return p == ".."; })) {
        c.why = "names a file outside the outputs: " + rel.string();
        return c;
      }
      fs::path p = out / rel;
      if (fs::is_symlink(p, ec) || !fs::is_regular_file(p, ec)) {
        c.why = rel.generic_string() + " is missing";
        return c;
      }
      if (fs::file_size(p) != f.at("size").get<uint64_t>()) {
        c.why = rel.generic_string() + " has another size";
        return c;
      }
      if (Sha256File(p) != f.at("sha256").get<std::string>()) {
        c.why = rel.generic_string() + " has another SHA-256";
        return c;
      }
      has_report = has_report || rel == "report.json";
      ++c.files;
    }
    if (!has_report) {
      c.why = "lists no report.json";
      return c;
    }
  } catch (const std::exception& e) {
    c.why = e.what();
    return c;
  }
  c.valid = true;
  return c;
}

}  // namespace ps

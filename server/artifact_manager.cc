#include "server/artifact_manager.h"

#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "proto/spec_convert.h"
#include "server/api_error.h"
#include "server/log.h"

namespace ps {

namespace pb = proxsparse::v1;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::optional<std::vector<ArtifactInfo>> ReadManifest(const fs::path& file, bool* complete) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  try {
    json j = json::parse(ReadFile(file));
    std::vector<ArtifactInfo> out;
    *complete = true;
    for (const auto& a : j.at("artifacts")) {
      ArtifactInfo info{a.at("path"), a.at("size"), a.value("sha256", "")};
      if (info.sha256.empty()) *complete = false;
      out.push_back(std::move(info));
    }
    return out;
  } catch (const std::exception& e) {
    LogEvent(spdlog::level::warn, "artifacts.bad_manifest",
             {{"file", file.string()}, {"error", e.what()}});
    return std::nullopt;
  }
}

void WriteManifest(const fs::path& file, const std::vector<ArtifactInfo>& files) {
  json arr = json::array();
  for (const auto& a : files) {
    json e{{"path", a.path}, {"size", a.size}};
    if (!a.sha256.empty()) e["sha256"] = a.sha256;
    arr.push_back(std::move(e));
  }
  WriteFileAtomic(file, json{{"version", 1}, {"artifacts", arr}}.dump(1));
}

}  // namespace

ArtifactManager::ArtifactManager(fs::path data_dir) : data_dir_(std::move(data_dir)) {
  fs::create_directories(data_dir_ / "jobs");
  hasher_ = std::thread([this] { HashLoop(); });
}

ArtifactManager::~ArtifactManager() { Stop(); }

void ArtifactManager::Stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (hasher_.joinable()) hasher_.join();
}

fs::path ArtifactManager::JobDir(const std::string& id) const { return data_dir_ / "jobs" / id; }

void ArtifactManager::CreateJobDir(const std::string& id, const std::string& spec_yaml,
                                   const std::string& submitted_yaml) {
  fs::path dir = JobDir(id);
  try {
    fs::create_directories(dir / "logs");
    fs::create_directories(dir / "output");
    WriteFileAtomic(dir / "job.yaml", spec_yaml);
    if (!submitted_yaml.empty()) WriteFileAtomic(dir / "submitted.yaml", submitted_yaml);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    throw ApiError(grpc::StatusCode::UNAVAILABLE,
                   std::string("cannot create the job's directory: ") + e.what());
  }
}

std::vector<ArtifactInfo> ArtifactManager::Snapshot(const std::string& id) const {
  return ListArtifactFiles(OutputDir(id), false);
}

std::shared_ptr<std::mutex> ArtifactManager::JobLock(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& m = job_locks_[id];
  if (!m) m = std::make_shared<std::mutex>();
  return m;
}

void ArtifactManager::Seal(const std::string& id, std::vector<ArtifactInfo> files, bool hash) {
  auto m = JobLock(id);
  {
    std::lock_guard lock(*m);
    try {
      WriteManifest(ManifestFile(id), files);
    } catch (const std::exception& e) {
      LogEvent(spdlog::level::err, "artifacts.manifest_failed",
               {{"job_id", id}, {"error", e.what()}});
      return;
    }
  }
  if (!hash) return;
  std::lock_guard lock(mu_);
  to_hash_.push_back(id);
  cv_.notify_all();
}

std::vector<ArtifactInfo> ArtifactManager::Manifest(const std::string& id, bool terminal) {
  if (!terminal) return Snapshot(id);
  auto m = JobLock(id);
  std::lock_guard lock(*m);
  bool complete = false;
  auto files = ReadManifest(ManifestFile(id), &complete);
  if (files && complete) return *files;
  if (!files) files = Snapshot(id);  // finished before manifests existed
  fs::path root = OutputDir(id);
  for (auto& a : *files) {
    std::error_code ec;
    if (a.sha256.empty() && fs::is_regular_file(root / a.path, ec))
      a.sha256 = Sha256File(root / a.path);
  }
  try {
    WriteManifest(ManifestFile(id), *files);
  } catch (const std::exception& e) {
    LogEvent(spdlog::level::err, "artifacts.manifest_failed",
             {{"job_id", id}, {"error", e.what()}});
  }
  return *files;
}

void ArtifactManager::HashLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !to_hash_.empty(); });
    if (stop_) return;
    std::string id = to_hash_.front();
    to_hash_.pop_front();
    lock.unlock();
    try {
      Manifest(id, true);
    } catch (const std::exception& e) {
      LogEvent(spdlog::level::err, "artifacts.hash_failed", {{"job_id", id}, {"error", e.what()}});
    }
    lock.lock();
  }
}

pb::ListArtifactsResponse ArtifactManager::List(const pb::Job& job) {
  pb::ListArtifactsResponse resp;
  resp.set_output_dir(OutputDir(job.id()).string());
  for (const auto& a : Manifest(job.id(), IsTerminal(job.state()))) {
    auto* out = resp.add_artifacts();
    out->set_path(a.path);
    out->set_size(a.size);
    out->set_sha256(a.sha256);
  }
  return resp;
}

std::optional<fs::path> ArtifactManager::Resolve(const pb::Job& job, const std::string& relative) {
  if (!IsTerminal(job.state())) return ResolveArtifact(OutputDir(job.id()), relative);
  bool complete = false;
  auto files = ReadManifest(ManifestFile(job.id()), &complete);
  if (!files) return ResolveArtifact(OutputDir(job.id()), relative);
  for (const auto& a : *files)
    if (a.path == relative) return ResolveArtifact(OutputDir(job.id()), relative);
  return std::nullopt;
}

std::string ArtifactManager::RemoveJobFiles(const std::string& id, bool keep_artifacts) {
  fs::path dir = JobDir(id);
  std::error_code ec;
  if (!keep_artifacts) {
    fs::remove_all(dir, ec);
    if (ec) throw Error("cannot remove " + dir.string() + ": " + ec.message());
    return "";
  }
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename() != "output") fs::remove_all(entry.path(), ec);
  fs::remove_all(OutputDir(id) / "checkpoints", ec);
  if (ec) throw Error("cannot remove files of " + dir.string() + ": " + ec.message());
  return OutputDir(id).string();
}

}  // namespace ps

// A job's files under DATA_DIR/jobs/<id>/: job.yaml, submitted.yaml, logs/worker.log, output/
// (published files and checkpoints) and manifest.json, the published file set of a finished job.
// The manifest is written when the job finishes: for SUCCEEDED with every file's SHA-256 (hashed
// once, on a background thread), for CANCELLED and FAILED as the file set at that moment (hashed
// at the first listing). Listing and downloading a finished job serve only the manifest's files,
// so nothing written after a cancel was recorded is ever published, and nothing is rehashed.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "proxsparse/v1/job_service.pb.h"
#include "server/artifacts.h"

namespace ps {

class ArtifactManager {
 public:
  explicit ArtifactManager(std::filesystem::path data_dir);
  ~ArtifactManager();

  std::filesystem::path JobDir(const std::string& id) const;
  std::filesystem::path OutputDir(const std::string& id) const { return JobDir(id) / "output"; }
  std::filesystem::path LogFile(const std::string& id) const {
    return JobDir(id) / "logs" / "worker.log";
  }
  std::filesystem::path ManifestFile(const std::string& id) const {
    return JobDir(id) / "manifest.json";
  }

  // Creates a new job's directory with its canonical and submitted job files; an I/O error is
  // UNAVAILABLE (and leaves no directory behind).
  void CreateJobDir(const std::string& id, const std::string& spec_yaml,
                    const std::string& submitted_yaml);
  // The published files now, without hashes.
  std::vector<ArtifactInfo> Snapshot(const std::string& id) const;
  // Writes the manifest of a finished job from `files`; with `hash`, hashes them in the background.
  void Seal(const std::string& id, std::vector<ArtifactInfo> files, bool hash);
  // Running jobs: the live listing, sizes only. Finished jobs: the manifest, hashing what it lacks
  // once (a job finished by an older psd gets its manifest here).
  proxsparse::v1::ListArtifactsResponse List(const proxsparse::v1::Job& job);
  // The file for `relative` when it is one of the job's published files; nullopt otherwise.
  std::optional<std::filesystem::path> Resolve(const proxsparse::v1::Job& job,
                                               const std::string& relative);
  // Deletes a job's directory, or with keep_artifacts everything but output/ (minus checkpoints).
  // Returns the kept directory (empty when nothing was kept).
  std::string RemoveJobFiles(const std::string& id, bool keep_artifacts);
  void Stop();

 private:
  std::vector<ArtifactInfo> Manifest(const std::string& id, bool terminal);
  std::shared_ptr<std::mutex> JobLock(const std::string& id);
  void HashLoop();

  std::filesystem::path data_dir_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> job_locks_;
  std::deque<std::string> to_hash_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread hasher_;
};

}  // namespace ps

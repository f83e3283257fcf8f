// Per-job worker credentials. psd issues each launched attempt its own bearer token, and only
// that token is accepted on the WorkerService for that job and attempt: a user's token (psctl)
// cannot report progress, checkpoints or results, and one job's workers cannot speak for another.
//
// A token is HMAC-SHA256(key, "job_id\nattempt"): nothing per job is stored, and a restarted psd
// verifies the tokens of the workers it re-attaches to. The key is 32 random bytes in a file
// beside the store (psd --worker-key-file), created with mode 0600 on first start; it must not
// be readable by workers (keep it off the shared job volume). The token reaches the workers as a
// file in the job directory (JOB_DIR/credentials/attempt-N.token, mode 0600), never on a command
// line, passed as --worker-token-file by every launcher.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/launcher.h"

namespace ps {

class WorkerCredentials {
 public:
  // Loads the key from `key_file`, creating it when absent. Throws ps::Error when it cannot, or
  // when the file is not a 32-byte key.
  explicit WorkerCredentials(const std::filesystem::path& key_file);
  // The token of one attempt (ASCII: "psw1." + 64 hex digits).
  std::string Token(const std::string& job_id, int attempt) const;
  // Constant-time comparison with Token(job_id, attempt).
  bool Verify(const std::string& job_id, int attempt, std::string_view token) const;
  // Writes the attempt's token file under `job_dir` and returns its path.
  std::filesystem::path Issue(const std::filesystem::path& job_dir, const std::string& job_id,
                              int attempt) const;
  // Whether a bearer token is a worker token at all (so a user-token check can refuse it).
  static bool LooksLikeWorkerToken(std::string_view token);

 private:
  std::string key_;
};

// Wraps a launcher: before each launch it issues the attempt's credential and appends
// `--worker-token-file FILE` (when `creds` is set) and `extra_args` (psd's worker flags such as
// --tls-cert/--tls-key) to the worker's arguments, so that every launcher passes them alike.
std::unique_ptr<Launcher> WithWorkerArgs(std::unique_ptr<Launcher> inner,
                                         std::shared_ptr<const WorkerCredentials> creds,
                                         std::vector<std::string> extra_args);

}  // namespace ps

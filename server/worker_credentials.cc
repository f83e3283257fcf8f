#include "server/worker_credentials.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/bounded_read.h"
#include "common/error.h"

namespace ps {

namespace fs = std::filesystem;

namespace {

constexpr size_t kKeyBytes = 32;
constexpr std::string_view kPrefix = "psw1.";

// Writes `data` to a new file with `mode` (O_EXCL: never through an existing file or link).
void WritePrivateFile(const fs::path& path, std::string_view data, mode_t mode) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) throw Error("cannot create " + tmp.string() + ": " + std::strerror(errno));
  bool ok = ::write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size()) &&
            ::fsync(fd) == 0;
  ok = ::close(fd) == 0 && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw Error("cannot write " + path.string() + ": " + std::strerror(e));
  }
}

std::string Hex(const unsigned char* d, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(kDigits[d[i] >> 4]);
    s.push_back(kDigits[d[i] & 15]);
  }
  return s;
}

}  // namespace

WorkerCredentials::WorkerCredentials(const fs::path& key_file) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(key_file, ec))) {
    unsigned char key[kKeyBytes];
    if (RAND_bytes(key, sizeof key) != 1) throw Error("cannot generate a worker credential key");
    if (!key_file.parent_path().empty()) fs::create_directories(key_file.parent_path());
    WritePrivateFile(key_file, std::string_view(reinterpret_cast<char*>(key), sizeof key), 0600);
  }
  key_ = ReadRegularFileBounded(key_file, 4096, "--worker-key-file");
  if (key_.size() != kKeyBytes)
    throw Error("--worker-key-file " + key_file.string() + ": expected " +
                std::to_string(kKeyBytes) + " bytes, found " + std::to_string(key_.size()) +
                " (delete it to make a new key; running workers then need relaunching)");
}

std::string WorkerCredentials::Token(const std::string& job_id, int attempt) const {
  std::string msg = job_id + "\n" + std::to_string(attempt);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned n = 0;
  if (!HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), md, &n))
    throw Error("HMAC-SHA256 failed");
  return std::string(kPrefix) + Hex(md, n);
}

bool WorkerCredentials::Verify(const std::string& job_id, int attempt,
                               std::string_view token) const {
  std::string want = Token(job_id, attempt);
  return token.size() == want.size() && CRYPTO_memcmp(token.data(), want.data(), want.size()) == 0;
}

fs::path WorkerCredentials::Issue(const fs::path& job_dir, const std::string& job_id,
                                  int attempt) const {
  fs::path dir = job_dir / "credentials";
  fs::create_directories(dir);
  fs::permissions(dir, fs::perms::owner_all, fs::perm_options::replace);
  fs::path file = dir / ("attempt-" + std::to_string(attempt) + ".token");
  WritePrivateFile(file, Token(job_id, attempt) + "\n", 0600);
  return file;
}

bool WorkerCredentials::LooksLikeWorkerToken(std::string_view token) {
  return token.substr(0, kPrefix.size()) == kPrefix;
}

namespace {

class WorkerArgsLauncher : public Launcher {
 public:
  WorkerArgsLauncher(std::unique_ptr<Launcher> inner,
                     std::shared_ptr<const WorkerCredentials> creds, std::vector<std::string> extra)
      : inner_(std::move(inner)), creds_(std::move(creds)), extra_(std::move(extra)) {}
  std::string Name() const override { return inner_->Name(); }
  std::string Launch(const LaunchRequest& req) override {
    LaunchRequest r = req;
    if (creds_) {
      fs::path token = creds_->Issue(r.job_dir, r.job_id, r.attempt);
      r.worker_args.insert(r.worker_args.end(), {"--worker-token-file", token.string()});
    }
    r.worker_args.insert(r.worker_args.end(), extra_.begin(), extra_.end());
    return inner_->Launch(r);
  }
  RunStatus Poll(const std::string& id) override { return inner_->Poll(id); }
  void Terminate(const std::string& id, bool force) override { inner_->Terminate(id, force); }

 private:
  std::unique_ptr<Launcher> inner_;
  std::shared_ptr<const WorkerCredentials> creds_;
  std::vector<std::string> extra_;
};

}  // namespace

std::unique_ptr<Launcher> WithWorkerArgs(std::unique_ptr<Launcher> inner,
                                         std::shared_ptr<const WorkerCredentials> creds,
                                         std::vector<std::string> extra_args) {
  return std::make_unique<WorkerArgsLauncher>(std::move(inner), std::move(creds),
                                              std::move(extra_args));
}

}  // namespace ps

#include "common/hub_client.h"

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"

namespace ps {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

std::string UrlEncode(const std::string& s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// Files a model directory needs; weights in other formats and sub-directories are left out.
bool Wanted(const std::string& name) {
  if (name.find('/') != std::string::npos) return false;
  auto ends = [&](const char* s) {
    const std::string suf(s);
    return name.size() >= suf.size() &&
           name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends(".json") || ends(".safetensors") || name == "tokenizer.model" || ends(".tiktoken") ||
         name == "merges.txt" || name == "vocab.txt";
}

std::string MiB(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1 << 20));
  return buf;
}

class Hub {
 public:
  Hub(const std::string& repo, const HubOptions& o) : repo_(repo), o_(o), cli_(o.endpoint) {
    if (!cli_.is_valid()) throw Error("HF_ENDPOINT: '" + o.endpoint + "' is not a valid URL");
    cli_.set_follow_location(true);
    cli_.set_connection_timeout(10);
    cli_.set_read_timeout(60);
    if (!o.token.empty()) cli_.set_bearer_token_auth(o.token);
  }

  void Log(const std::string& line) const {
    if (o_.log) o_.log(line);
  }

  // Turns an HTTP failure into a message that says what to do.
  [[noreturn]] void Fail(const httplib::Result& r, const std::string& what) const {
    const std::string where = repo_ + " at " + o_.endpoint;
    if (!r)
      throw Error("cannot reach the Hub at " + o_.endpoint + " (" + httplib::to_string(r.error()) +
                  ") while fetching " + what + "; check HF_ENDPOINT and the network");
    const int s = r->status;
    const std::string code = r->get_header_value("X-Error-Code");
    const std::string msg = r->get_header_value("X-Error-Message");
    if (s == 401)
      throw Error(where + ": access refused (401): the repository is private or gated" +
                  (o_.token.empty() ? std::string(" and needs a token; set HF_TOKEN to an access "
                                                  "token of an account that may read it")
                                    : std::string("; HF_TOKEN is not valid for it")));
    if (s == 403)
      throw Error(where + ": access refused (403): the repository is gated" +
                  (msg.empty() ? std::string() : " (" + msg + ")") +
                  "; accept its conditions on its Hub page with the account of HF_TOKEN, then "
                  "run again");
    if (s == 404 && code == "RevisionNotFound")
      throw Error(where + ": no revision '" + o_.revision + "' (a branch, tag or commit)");
    if (s == 404 && code == "EntryNotFound") throw Error(where + ": no file " + what);
    if (s == 404)
      throw Error(where + ": no such repository (check ORG/NAME; private repositories need " +
                  "HF_TOKEN)");
    throw Error(where + ": HTTP " + std::to_string(s) + " while fetching " + what +
                (msg.empty() ? std::string() : " (" + msg + ")"));
  }

  json Info() {
    const std::string path =
        "/api/models/" + repo_ + "/revision/" + UrlEncode(o_.revision, false) + "?blobs=true";
    auto r = cli_.Get(path);
    if (!r || r->status != 200) Fail(r, "the model info");
    try {
      return json::parse(r->body);
    } catch (const json::exception& e) {
      throw Error(repo_ + ": the Hub's model info is not JSON (" + e.what() + ")");
    }
  }

  // Downloads one file to `target`, resuming `target`.part; checks `sha256` (when given) or size.
  uint64_t File(const std::string& commit, const std::string& name, const fs::path& target,
                const std::string& sha256, int64_t size) {
    const fs::path part = target.string() + ".part";
    const std::string path = "/" + repo_ + "/resolve/" + commit + "/" + UrlEncode(name, true);
    uint64_t fetched = 0;
    for (int attempt = 1;; ++attempt) {
      std::error_code ec;
      uint64_t have = fs::exists(part) ? fs::file_size(part, ec) : 0;
      if (size >= 0 && have > static_cast<uint64_t>(size)) {  // not this file: start over
        fs::remove(part, ec);
        have = 0;
      }
      httplib::Headers headers;
      if (have > 0) {
        headers.emplace("Range", "bytes=" + std::to_string(have) + "-");
        Log(name + ": resuming at " + MiB(have));
      }
      std::ofstream out(part, std::ios::binary | std::ios::app);
      if (!out) throw Error("cannot write " + part.string());
      bool restart = false;
      uint64_t got = have, next_log = 0;
      const auto t0 = std::chrono::steady_clock::now();
      auto r = cli_.Get(
          path, headers,
          [&](const httplib::Response& resp) {
            if (have > 0 && resp.status == 200) {  // the server ignored the range: start over
              out.close();
              out.open(part, std::ios::binary | std::ios::trunc);
              got = 0;
              restart = true;
            }
            return resp.status == 200 || resp.status == 206;
          },
          [&](const char* data, size_t n) {
            out.write(data, static_cast<std::streamsize>(n));
            got += n;
            fetched += n;
            if (size > 0 && got >= next_log) {  // a plain line per 10%
              const double secs =
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
              const double rate =
                  static_cast<double>(got - (restart ? 0 : have)) / std::max(secs, 1e-3);
              char buf[160];
              std::snprintf(
                  buf, sizeof buf, "%s: %s of %s, %.1f MiB/s, ETA %.0f s", name.c_str(),
                  MiB(got).c_str(), MiB(static_cast<uint64_t>(size)).c_str(), rate / (1 << 20),
                  (static_cast<double>(size) - static_cast<double>(got)) / std::max(rate, 1.0));
              Log(buf);
              next_log = got + static_cast<uint64_t>(size) / 10 + 1;
            }
            return static_cast<bool>(out);
          });
      out.close();
      if (r && (r->status == 200 || r->status == 206)) break;
      if (r && r->status == 416 && size >= 0 && have == static_cast<uint64_t>(size)) break;
      if (r && r->status != 200 && r->status != 206 && r->status < 500) Fail(r, name);
      if (attempt >= o_.attempts) Fail(r, name);
      Log(name + ": interrupted (" +
          (r ? "HTTP " + std::to_string(r->status) : httplib::to_string(r.error())) +
          "), retrying (" + std::to_string(attempt) + "/" + std::to_string(o_.attempts) + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
    }
    std::error_code ec;
    const uint64_t bytes = fs::file_size(part, ec);
    if (size >= 0 && bytes != static_cast<uint64_t>(size)) {
      fs::remove(part, ec);
      throw Error(repo_ + ": " + name + " is " + std::to_string(bytes) + " bytes, the Hub says " +
                  std::to_string(size) + "; run again");
    }
    if (!sha256.empty()) {
      const std::string got = Sha256File(part);
      if (got != sha256) {
        fs::remove(part, ec);
        throw Error(repo_ + ": " + name + " has SHA-256 " + got + ", the Hub says " + sha256 +
                    " (the download was corrupted); run again");
      }
    }
    fs::rename(part, target);
    return fetched;
  }

 private:
  std::string repo_;
  HubOptions o_;
  httplib::Client cli_;
};

}  // namespace

HubOptions HubOptionsFromEnvironment() {
  HubOptions o;
  if (std::string e = Env("HF_ENDPOINT"); !e.empty()) {
    while (!e.empty() && e.back() == '/') e.pop_back();
    o.endpoint = e;
  }
  o.token = Env("HF_TOKEN");
  if (o.token.empty()) o.token = Env("HUGGING_FACE_HUB_TOKEN");
  return o;
}

fs::path DefaultHubCache() {
  if (std::string c = Env("HF_HUB_CACHE"); !c.empty()) return c;
  if (std::string h = Env("HF_HOME"); !h.empty()) return fs::path(h) / "hub";
  if (std::string x = Env("XDG_CACHE_HOME"); !x.empty()) return fs::path(x) / "huggingface/hub";
  return fs::path(Env("HOME")) / ".cache/huggingface/hub";
}

void CheckRepoId(const std::string& repo) {
  const auto slash = repo.find('/');
  auto ok_part = [](const std::string& p) {
    if (p.empty() || p.size() > 96 || p == "." || p == "..") return false;
    for (unsigned char c : p)
      if (!(std::isalnum(c) || c == '-' || c == '_' || c == '.')) return false;
    return true;
  };
  if (slash == std::string::npos || !ok_part(repo.substr(0, slash)) ||
      !ok_part(repo.substr(slash + 1)))
    throw Error("'" + repo +
                "' is not a Hub model id: expected ORG/NAME (letters, digits, '-', "
                "'_', '.'), e.g. TinyLlama/TinyLlama-1.1B-Chat-v1.0");
}

HubDownload DownloadModel(const std::string& repo, const fs::path& dir, const HubOptions& o) {
  CheckRepoId(repo);
  Hub hub(repo, o);
  json info = hub.Info();
  HubDownload d;
  d.repo = repo;
  d.revision = o.revision;
  d.commit = info.value("sha", "");
  if (d.commit.empty()) throw Error(repo + ": the Hub's model info has no commit (sha)");
  if (!info.contains("siblings") || !info["siblings"].is_array())
    throw Error(repo + ": the Hub's model info lists no files (siblings)");
  fs::create_directories(dir);
  for (const auto& s : info["siblings"]) {
    const std::string name = s.value("rfilename", "");
    if (!Wanted(name)) continue;
    std::string sha;
    int64_t size = s.contains("size") ? s["size"].get<int64_t>() : -1;
    if (s.contains("lfs") && s["lfs"].is_object()) {
      sha = s["lfs"].value("sha256", "");
      size = s["lfs"].value("size", size);
    }
    const fs::path target = dir / name;
    std::error_code ec;
    bool have = fs::is_regular_file(target, ec) &&
                (size < 0 || fs::file_size(target, ec) == static_cast<uint64_t>(size)) &&
                (sha.empty() || Sha256File(target) == sha);
    if (have) {
      hub.Log(name + ": already here");
    } else {
      d.fetched_bytes += hub.File(d.commit, name, target, sha, size);
      hub.Log(name + ": done" + (sha.empty() ? "" : " (SHA-256 checked)"));
    }
    d.files.push_back(name);
    d.bytes += fs::file_size(target, ec);
  }
  if (std::find(d.files.begin(), d.files.end(), "config.json") == d.files.end())
    throw Error(repo + ": the repository has no config.json; is it a model repository?");
  WriteFileAtomic(dir / ".hub.json", json{{"repo", repo},
                                          {"revision", o.revision},
                                          {"commit", d.commit},
                                          {"endpoint", o.endpoint},
                                          {"files", d.files}}
                                         .dump(2));
  return d;
}

fs::path DownloadToCache(const std::string& repo, const fs::path& cache, const HubOptions& o,
                         HubDownload* info) {
  CheckRepoId(repo);
  std::string flat = "models--" + repo;
  flat.replace(flat.find('/'), 1, "--");
  // The commit the revision points to now names the snapshot; files already there are checked
  // and kept, partial ones resumed.
  const std::string commit = Hub(repo, o).Info().value("sha", "");
  if (commit.empty()) throw Error(repo + ": the Hub's model info has no commit (sha)");
  HubOptions pinned = o;
  pinned.revision = commit;
  const fs::path snap = cache / flat / "snapshots" / commit;
  HubDownload d = DownloadModel(repo, snap, pinned);
  d.revision = o.revision;
  fs::create_directories(cache / flat / "refs");
  WriteFileAtomic(cache / flat / "refs" / UrlEncode(o.revision, false), commit);
  if (info) *info = d;
  return snap;
}

}  // namespace ps

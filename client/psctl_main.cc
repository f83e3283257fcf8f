// psctl: the command line for psd. Global options go before or after the verb, as with kubectl
// (`psctl list -o json`, `psctl get ID --server X`). Exit codes (docs/exit-codes.md):
//   0 ok (watch / submit --watch: the job SUCCEEDED)   1 other error   2 bad usage
//   3 invalid job file or argument   4 no such job or artifact   5 psd unreachable
//   6 authentication failed   10 the job FAILED   11 the job was CANCELLED
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "client/channel.h"
#include "client/psctl_completion.h"
#include "client/psctl_format.h"
#include "common/bounded_read.h"
#include "common/edit_distance.h"
#include "common/error.h"
#include "common/file_util.h"
#include "common/job_spec.h"
#include "common/progress.h"
#include "common/version.h"
#include "common/yaml_overrides.h"
#include "proto/spec_convert.h"
#include "proxsparse/v1/job_service.grpc.pb.h"

namespace ps {
namespace {

namespace fs = std::filesystem;
namespace pb = proxsparse::v1;
using namespace std::chrono_literals;

std::string info_string(const nlohmann::ordered_json& j, const char* key) {
  return j.contains(key) ? j.at(key).get<std::string>() : std::string("?");
}

enum Exit {
  kOk = 0,
  kError = 1,
  kUsage = 2,
  kInvalid = 3,
  kNotFound = 4,
  kUnavailable = 5,
  kAuth = 6,
  kJobFailed = 10,
  kJobCancelled = 11
};

// A failed call, with the exit code it maps to and advice on what to do.
struct CallError {
  int code;
  std::string message;
};

CallError FromStatus(const grpc::Status& st, const std::string& server) {
  using C = grpc::StatusCode;
  switch (st.error_code()) {
    case C::INVALID_ARGUMENT:
      return {kInvalid, "invalid: " + st.error_message()};
    case C::NOT_FOUND:
      return {kNotFound, st.error_message()};
    case C::UNAVAILABLE:
      // psd answered but could not record the change (disk full, store locked): nothing changed.
      if (st.error_message().rfind("job store:", 0) == 0)
        return {kUnavailable, "psd could not record this, nothing was changed; try again later (" +
                                  st.error_message() + ")"};
      [[fallthrough]];
    case C::DEADLINE_EXCEEDED:
      return {kUnavailable, "cannot reach psd at " + server + " (" + st.error_message() +
                                "). Is psd running? Set the address with --server, PSCTL_SERVER or "
                                "~/.config/psctl.yaml (server: HOST:PORT)."};
    case C::UNAUTHENTICATED:
    case C::PERMISSION_DENIED:
      return {kAuth, st.error_message() +
                         " (give the token with --token-file FILE, PSCTL_TOKEN_FILE or "
                         "token_file: in ~/.config/psctl.yaml)"};
    default:
      return {kError, st.error_message()};
  }
}

struct Globals {
  ConnectionOptions conn;
  std::string output = "table";
  double timeout_s = 30;
};

// Precedence: flags, then environment, then the config file, then defaults.
void ApplyEnvAndConfig(Globals& g, const CLI::App& app) {
  auto unset = [&](const char* flag) { return app.get_option(flag)->count() == 0; };
  std::string cfg_path;
  if (const char* c = std::getenv("PSCTL_CONFIG")) {
    cfg_path = c;
  } else if (const char* home = std::getenv("HOME")) {
    cfg_path = std::string(home) + "/.config/psctl.yaml";
  }
  YAML::Node cfg;
  if (!cfg_path.empty() && fs::exists(cfg_path)) {
    try {
      cfg = YAML::LoadFile(cfg_path);
    } catch (const YAML::Exception& e) {
      throw Error(cfg_path + ": " + e.what());
    }
  }
  auto pick = [&](const char* flag, const char* env, const char* key, std::string& field) {
    if (!unset(flag)) return;
    if (const char* v = std::getenv(env); v && *v) {
      field = v;
    } else if (cfg && cfg.IsMap() && cfg[key]) {
      field = cfg[key].as<std::string>();
      // Relative paths in the config file are relative to it.
      if (std::string(key) != "server" && std::string(key) != "output" && !field.empty() &&
          fs::path(field).is_relative())
        field = (fs::path(cfg_path).parent_path() / field).string();
    }
  };
  pick("--server", "PSCTL_SERVER", "server", g.conn.address);
  pick("--token-file", "PSCTL_TOKEN_FILE", "token_file", g.conn.token_file);
  pick("--tls-ca", "PSCTL_TLS_CA", "tls_ca", g.conn.tls_ca);
  pick("--tls-cert", "PSCTL_TLS_CERT", "tls_cert", g.conn.tls_cert);
  pick("--tls-key", "PSCTL_TLS_KEY", "tls_key", g.conn.tls_key);
  pick("--output", "PSCTL_OUTPUT", "output", g.output);
}

class Client {
 public:
  explicit Client(const Globals& g)
      : g_(g),
        stub_(pb::JobService::NewStub(MakeChannel(g.conn))),
        token_(ReadToken(g.conn.token_file)),
        format_(ParseOutputFormat(g.output)) {}

  std::unique_ptr<grpc::ClientContext> Ctx(bool streaming = false) {
    return MakeContext(
        token_,
        streaming ? 0ms : std::chrono::milliseconds(static_cast<int64_t>(g_.timeout_s * 1000)));
  }
  void Check(const grpc::Status& st) {
    if (!st.ok()) throw FromStatus(st, g_.conn.address);
  }
  OutputFormat format() const { return format_; }
  pb::JobService::Stub& stub() { return *stub_; }

  pb::Job Get(const std::string& id) {
    pb::GetJobRequest req;
    req.set_id(id);
    pb::Job job;
    auto ctx = Ctx();
    Check(stub_->GetJob(ctx.get(), req, &job));
    return job;
  }

 private:
  Globals g_;
  std::unique_ptr<pb::JobService::Stub> stub_;
  std::string token_;
  OutputFormat format_;
};

int ExitForState(pb::JobState s) {
  if (s == pb::JOB_STATE_SUCCEEDED) return kOk;
  if (s == pb::JOB_STATE_CANCELLED) return kJobCancelled;
  return kJobFailed;
}

int Watch(Client& c, const std::string& id) {
  pb::WatchJobRequest req;
  req.set_id(id);
  bool tty = ::isatty(STDERR_FILENO) && IsTableFormat(c.format());
  bool bar_open = false;
  pb::Job last;
  pb::JobState shown = pb::JOB_STATE_UNSPECIFIED;
  int64_t last_step = -1;
  // The stream ends when the job finishes; a dropped stream (psd restart) is re-opened.
  for (int reconnects = 0;; ++reconnects) {
    auto ctx = c.Ctx(true);
    auto reader = c.stub().WatchJob(ctx.get(), req);
    pb::WatchJobResponse ev;
    while (reader->Read(&ev)) {
      last = ev.job();
      reconnects = 0;
      if (!IsTableFormat(c.format())) {
        std::cout << MessageToJson(ev).substr(0) << std::flush;
        continue;
      }
      if (last.state() != shown && !IsTerminal(last.state())) {  // the end is printed below
        if (bar_open) std::fputc('\n', stderr);
        bar_open = false;
        std::fprintf(stderr, "%s %s: %s\n", last.id().c_str(), JobStateName(last.state()).c_str(),
                     EscapeControl(last.message()).c_str());
        shown = last.state();
      }
      if (last.has_progress() && (ev.kind() == pb::WatchJobResponse::KIND_PROGRESS ||
                                  last.progress().step() != last_step)) {
        last_step = last.progress().step();
        std::string line = FormatProgressLine(ProgressFromProto(last.progress()), tty ? 24 : 0,
                                              last.spec().pattern());
        if (tty) {
          std::fprintf(stderr, "\r\033[K%s", line.c_str());
          bar_open = true;
        } else {
          std::fprintf(stderr, "%s\n", line.c_str());
        }
      }
      if (ev.kind() == pb::WatchJobResponse::KIND_CHECKPOINT) {
        if (bar_open) std::fputc('\n', stderr);
        bar_open = false;
        std::fprintf(stderr, "checkpoint at step %lld\n",
                     static_cast<long long>(last.checkpoint_step()));
      }
    }
    grpc::Status st = reader->Finish();
    if (st.ok() && IsTerminal(last.state())) break;
    if (!st.ok() && st.error_code() != grpc::StatusCode::UNAVAILABLE) c.Check(st);
    if (reconnects >= 30) c.Check(st);  // about a minute without psd
    std::this_thread::sleep_for(2s);
  }
  if (bar_open) std::fputc('\n', stderr);
  if (IsTableFormat(c.format())) {
    std::printf("%s %s: %s\n", last.id().c_str(), JobStateName(last.state()).c_str(),
                EscapeControl(last.message()).c_str());
    for (const auto& line : ResultLines(last)) std::printf("%s\n", EscapeControl(line).c_str());
    if (last.state() == pb::JOB_STATE_SUCCEEDED)
      std::printf("outputs: %s\n(psctl artifacts %s --download DIR fetches them)\n",
                  last.output_dir().c_str(), last.id().c_str());
    else
      std::printf("(psctl logs %s shows the worker log)\n", last.id().c_str());
  }
  return ExitForState(last.state());
}

// The verb of a command line, skipping global options and their values; "" when there is none.
std::string FindVerb(const CLI::App& app, int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (a.size() > 1 && a[0] == '-') {
      if (a.find('=') != std::string::npos) continue;
      for (const CLI::Option* o : app.get_options())
        if (o->get_type_size() != 0 && o->check_name(a)) ++i;  // its value follows
      continue;
    }
    return a;
  }
  return "";
}

// "unknown command" with the closest verb, before CLI11 would report it as an extra argument.
bool CheckVerb(const CLI::App& app, const std::string& verb) {
  if (verb.empty()) return true;
  for (const CLI::App* sub : app.get_subcommands({}))
    if (sub->check_name(verb)) return true;
  std::string best;
  size_t best_d = std::string::npos;
  for (const CLI::App* sub : app.get_subcommands({})) {
    const std::string& name = sub->get_name();
    size_t d = EditDistance(verb, name);
    if (name.rfind(verb, 0) == 0) d = std::min<size_t>(d, 1);  // a prefix: "wat" -> watch
    if (d < best_d) best_d = d, best = name;
  }
  std::fprintf(stderr, "psctl: unknown command \"%s\"", verb.c_str());
  if (best_d <= std::max<size_t>(2, verb.size() / 3))
    std::fprintf(stderr, "; did you mean \"%s\"?", best.c_str());
  std::fprintf(stderr, "\nRun 'psctl --help' for the commands.\n");
  return false;
}

int Main(int argc, char** argv) {
  CLI::App app{"psctl: submit and follow ProxSparse pruning jobs on psd"};
  app.name("psctl");
  app.require_subcommand(1);
  // Options of psctl itself may also come after the verb (kubectl's habit).
  app.fallthrough();
  Globals g;
  app.add_option("--server", g.conn.address, "psd address HOST:PORT (env PSCTL_SERVER)")
      ->capture_default_str();
  app.add_option("--token-file", g.conn.token_file, "bearer token file (env PSCTL_TOKEN_FILE)");
  app.add_option("--tls-ca", g.conn.tls_ca, "CA of psd's TLS certificate; enables TLS");
  app.add_option("--tls-cert", g.conn.tls_cert, "client certificate for mTLS");
  app.add_option("--tls-key", g.conn.tls_key, "client key for mTLS");
  app.add_option("--tls-server-name", g.conn.tls_server_name, "name expected in psd's cert");
  app.add_option("-o,--output", g.output, "table | wide | json | yaml")->capture_default_str();
  app.add_option("--timeout", g.timeout_s, "seconds per call")->capture_default_str();

  std::string file, id, download, reason;
  bool watch = false, follow = false;
  int max_attempts = 0, limit = 0;
  int64_t tail = 0;
  std::vector<std::string> states, paths, overrides;
  bool dry_run = false, client_only = false;
  std::string shell;
  auto* submit = app.add_subcommand("submit", "submit a job file; prints the job id");
  submit->add_option("file", file, "job file (docs/job-file.md)")->required();
  submit->add_flag("--watch,-w", watch, "then follow it to the end (exit code by final state)");
  submit->add_option("--max-attempts", max_attempts, "attempts before FAILED (default: psd's)");
  submit->add_option("--set", overrides, "override a job key: --set method.lambda1=2 (repeatable)");
  submit->add_flag("--dry-run", dry_run,
                   "validate against psd and print the canonical job; submit nothing");
  auto* get = app.add_subcommand("get", "show one job");
  get->add_option("id", id)->required();
  auto* list = app.add_subcommand("list", "list jobs, oldest first");
  list->add_option("--state", states, "only these states (repeatable)");
  list->add_option("--limit", limit, "at most this many (0: all)");
  auto* watch_cmd = app.add_subcommand("watch", "follow a job with a progress bar until it ends");
  watch_cmd->add_option("id", id)->required();
  auto* cancel = app.add_subcommand("cancel", "stop a job (its workers are terminated)");
  cancel->add_option("id", id)->required();
  cancel->add_option("--reason", reason);
  bool keep_artifacts = false;
  auto* del = app.add_subcommand("delete", "remove a finished job's record and files");
  del->add_option("id", id)->required();
  del->add_flag("--keep-artifacts", keep_artifacts, "leave its published outputs on disk");
  auto* logs = app.add_subcommand("logs", "print a job's worker log");
  logs->add_option("id", id)->required();
  logs->add_flag("-f,--follow", follow, "keep printing until the job ends");
  logs->add_option("--tail", tail, "only the last N bytes");
  auto* arts = app.add_subcommand("artifacts", "list (or download) a job's published outputs");
  arts->add_option("id", id)->required();
  arts->add_option("--download", download, "download into this directory (sha256-checked)");
  arts->add_option("--path", paths, "only these artifacts (repeatable)");
  auto* version = app.add_subcommand("version", "print psctl's and psd's versions");
  version->add_flag("--client", client_only, "psctl's only (no call to psd)");
  auto* completion = app.add_subcommand("completion", "print a shell completion script");
  completion->add_option("shell", shell, "bash | zsh")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh"}));
  for (CLI::App* sub : app.get_subcommands({})) sub->fallthrough();

  const std::string verb = FindVerb(app, argc, argv);
  if (verb == "help") {
    std::cout << app.help();
    return kOk;
  }
  if (!CheckVerb(app, verb)) return kUsage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kOk : kUsage;
  }
  try {
    if (*completion) {
      std::cout << CompletionScript(app, shell);
      return kOk;
    }
    ApplyEnvAndConfig(g, app);
    try {
      ParseOutputFormat(g.output);
    } catch (const Error& e) {
      std::fprintf(stderr, "psctl: %s\n", e.what());
      return kUsage;
    }
    if (*version) {
      nlohmann::ordered_json v;
      v["client"] = {{"name", "psctl"}, {"version", ProjectVersion()}, {"api", kApiVersion}};
      const OutputFormat format = ParseOutputFormat(g.output);
      int rc = kOk;
      std::string server_error;
      if (!client_only) {
        Client c(g);
        pb::VersionInfo info;
        auto ctx = c.Ctx();
        grpc::Status st = c.stub().GetVersion(ctx.get(), pb::GetVersionRequest(), &info);
        if (st.ok()) {
          v["server"] = {{"name", "psd"},
                         {"version", info.version()},
                         {"api", info.api()},
                         {"launcher", info.launcher()},
                         {"address", g.conn.address}};
        } else {
          CallError e = FromStatus(st, g.conn.address);
          server_error = e.message;
          rc = e.code;
        }
      }
      if (format == OutputFormat::kJson) {
        std::cout << v.dump(2) << "\n";
      } else if (format == OutputFormat::kYaml) {
        std::cout << JsonToYaml(v);
      } else {
        std::printf("Client: psctl %s (%s)\n", ProjectVersion(), kApiVersion);
        if (v.contains("server"))
          std::printf("Server: psd %s (%s, %s launcher) at %s\n",
                      info_string(v["server"], "version").c_str(),
                      info_string(v["server"], "api").c_str(),
                      info_string(v["server"], "launcher").c_str(), g.conn.address.c_str());
      }
      if (!server_error.empty()) std::fprintf(stderr, "psctl: server: %s\n", server_error.c_str());
      return rc;
    }
    Client c(g);
    if (*submit) {
      pb::SubmitJobRequest req;
      fs::path path(file);
      if (!fs::is_regular_file(path)) throw CallError{kInvalid, file + ": no such job file"};
      // Checked here as psd would: a binary or non-UTF-8 file cannot even be sent (protobuf
      // strings are UTF-8), and the message must say why.
      std::string text = ReadRegularFileBounded(path, kMaxJobFileBytes, "job file");
      try {
        if (!overrides.empty()) text = ApplyYamlOverrides(text, overrides, file);
        CheckJobText(text, file);
      } catch (const Error& e) {
        throw CallError{kInvalid, std::string("invalid: ") + e.what()};
      }
      req.set_yaml(text);
      req.set_base_dir(fs::absolute(path).parent_path().string());
      req.set_source_name(overrides.empty() ? file : file + " (with --set)");
      req.set_max_attempts(max_attempts);
      req.set_dry_run(dry_run);
      pb::Job job;
      auto ctx = c.Ctx();
      c.Check(c.stub().SubmitJob(ctx.get(), req, &job));
      if (dry_run) {
        if (IsTableFormat(c.format())) {
          std::cout << job.spec_yaml();
          std::fprintf(stderr, "%s is valid (spec hash %s); nothing was submitted\n", file.c_str(),
                       job.spec_hash().c_str());
        } else {
          std::cout << Render(job, c.format());
        }
        return kOk;
      }
      if (IsTableFormat(c.format())) {
        std::printf("%s\n", job.id().c_str());
        std::fprintf(
            stderr, "submitted %s (%s, %s %s); follow it with: psctl watch %s\n", job.id().c_str(),
            job.name().empty() ? "unnamed" : EscapeControl(job.name()).c_str(),
            job.spec().method().name().c_str(), job.spec().pattern().c_str(), job.id().c_str());
      } else {
        std::cout << Render(job, c.format());
      }
      return watch ? Watch(c, job.id()) : kOk;
    }
    if (*get) {
      pb::Job job = c.Get(id);
      std::cout << (IsTableFormat(c.format()) ? JobDetails(job) : Render(job, c.format()));
      return kOk;
    }
    if (*list) {
      pb::ListJobsRequest req;
      for (const auto& s : states) req.add_states(ParseJobState(s));
      std::vector<pb::Job> all;
      pb::ListJobsResponse page;
      do {
        req.set_page_token(page.next_page_token());
        req.set_page_size(100);
        auto ctx = c.Ctx();
        c.Check(c.stub().ListJobs(ctx.get(), req, &page));
        for (const auto& j : page.jobs()) all.push_back(j);
      } while (!page.next_page_token().empty() && (limit <= 0 || (int)all.size() < limit));
      if (limit > 0 && static_cast<int>(all.size()) > limit) all.resize(limit);
      if (IsTableFormat(c.format())) {
        std::cout << JobsTable(all, c.format() == OutputFormat::kWide);
      } else {
        pb::ListJobsResponse out;
        for (auto& j : all) *out.add_jobs() = j;
        std::cout << Render(out, c.format());
      }
      return kOk;
    }
    if (*watch_cmd) return Watch(c, id);
    if (*cancel) {
      pb::CancelJobRequest req;
      req.set_id(id);
      req.set_reason(reason);
      pb::Job job;
      auto ctx = c.Ctx();
      c.Check(c.stub().CancelJob(ctx.get(), req, &job));
      if (IsTableFormat(c.format()))
        std::printf("%s %s: %s\n", job.id().c_str(), JobStateName(job.state()).c_str(),
                    EscapeControl(job.message()).c_str());
      else
        std::cout << Render(job, c.format());
      return kOk;
    }
    if (*del) {
      pb::DeleteJobRequest req;
      req.set_id(id);
      req.set_keep_artifacts(keep_artifacts);
      pb::DeleteJobResponse resp;
      auto ctx = c.Ctx();
      c.Check(c.stub().DeleteJob(ctx.get(), req, &resp));
      if (IsTableFormat(c.format()))
        std::printf(
            "%s deleted%s\n", resp.id().c_str(),
            resp.kept_dir().empty() ? "" : ("; outputs kept in " + resp.kept_dir()).c_str());
      else
        std::cout << Render(resp, c.format());
      return kOk;
    }
    if (*logs) {
      pb::StreamLogsRequest req;
      req.set_id(id);
      req.set_follow(follow);
      req.set_offset(tail > 0 ? -tail : 0);
      auto ctx = c.Ctx(true);
      auto reader = c.stub().StreamLogs(ctx.get(), req);
      pb::LogChunk chunk;
      while (reader->Read(&chunk)) {
        std::fwrite(chunk.data().data(), 1, chunk.data().size(), stdout);
        std::fflush(stdout);
      }
      c.Check(reader->Finish());
      return kOk;
    }
    if (*arts) {
      pb::ListArtifactsRequest req;
      req.set_id(id);
      pb::ListArtifactsResponse resp;
      auto ctx = c.Ctx();
      c.Check(c.stub().ListArtifacts(ctx.get(), req, &resp));
      if (download.empty()) {
        if (IsTableFormat(c.format())) {
          if (resp.artifacts_size() == 0)
            std::printf("job %s has no published artifacts yet (in %s)\n", id.c_str(),
                        resp.output_dir().c_str());
          else
            std::cout << ArtifactsTable(resp);
        } else {
          std::cout << Render(resp, c.format());
        }
        return kOk;
      }
      fs::path dest = download;
      int n = 0;
      for (const auto& a : resp.artifacts()) {
        if (!paths.empty() && std::find(paths.begin(), paths.end(), a.path()) == paths.end())
          continue;
        fs::path target = (dest / fs::path(a.path())).lexically_normal();
        // The server's listing is trusted only so far: never write outside DIR.
        auto rel = target.lexically_relative(dest.lexically_normal());
        if (rel.empty() || *rel.begin() == "..")
          throw CallError{kError, "refusing artifact path '" + a.path() + "'"};
        fs::create_directories(target.parent_path());
        pb::DownloadArtifactRequest dreq;
        dreq.set_id(id);
        dreq.set_path(a.path());
        auto dctx = c.Ctx(true);
        auto reader = c.stub().DownloadArtifact(dctx.get(), dreq);
        AtomicFileWriter w(target);
        pb::ArtifactChunk chunk;
        while (reader->Read(&chunk)) w.Write(chunk.data().data(), chunk.data().size());
        c.Check(reader->Finish());
        w.Commit();
        std::string sha = Sha256File(target);
        // A running job's files have no hash yet (they are hashed once the job finishes).
        if (!a.sha256().empty() && sha != a.sha256())
          throw CallError{kError, "downloaded " + a.path() + " does not match its sha256 (" + sha +
                                      " != " + a.sha256() + "); try again"};
        std::fprintf(stderr, "%s (%s)\n", target.c_str(), HumanBytes(a.size()).c_str());
        ++n;
      }
      if (!paths.empty() && n != static_cast<int>(paths.size()))
        throw CallError{kNotFound, "some --path values are not artifacts of job " + id +
                                       " (psctl artifacts " + id + " lists them)"};
      std::fprintf(stderr, "downloaded %d file(s) into %s\n", n, dest.c_str());
      return kOk;
    }
  } catch (const CallError& e) {
    std::fprintf(stderr, "psctl: %s\n", EscapeControl(e.message).c_str());
    return e.code;
  } catch (const Error& e) {
    std::fprintf(stderr, "psctl: %s\n", EscapeControl(e.what()).c_str());
    return kError;
  }
  return kUsage;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) { return ps::Main(argc, argv); }

// Fault tests of the worker side and the service's edges (CTest label "faults"): a finished
// result that outlives a psd outage, mTLS workers, per-job worker credentials, hostile paths and
// hostile job files. Real psd, psctl and workers on loopback (tests/server/service_harness.h).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "common/file_util.h"
#include "proxsparse/v1/job_service.grpc.pb.h"
#include "proxsparse/v1/worker_service.grpc.pb.h"
#include "tests/server/service_harness.h"

namespace ps::test {
namespace {

namespace fs = std::filesystem;
namespace pb = proxsparse::v1;
using nlohmann::json;
using namespace std::chrono_literals;

class WorkerFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(std::string("faults_") +
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    psd_.reset();
    for (const auto& [k, v] : env_) ::unsetenv(k.c_str());
    if (!HasFailure()) fs::remove_all(dir_);
  }
  Psd& StartPsd(std::vector<std::string> extra = {}, int port = 0) {
    psd_ = std::make_unique<Psd>(dir_ / "psd", std::move(extra), port);
    return *psd_;
  }
  // Environment psd (and so its workers) inherit from here on.
  void SetEnv(const std::string& k, const std::string& v) {
    env_[k] = v;
    ::setenv(k.c_str(), v.c_str(), 1);
  }
  std::string Submit(const fs::path& job) {
    CmdResult r = psd_->Ctl({"submit", job.string()});
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }
  static int64_t Int(const json& j, const char* k, int64_t def = 0) {
    if (!j.contains(k)) return def;
    return j[k].is_string() ? std::stoll(j[k].get<std::string>()) : j[k].get<int64_t>();
  }
  static std::string Slurp(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  }
  fs::path dir_;
  std::unique_ptr<Psd> psd_;
  std::map<std::string, std::string> env_;
};

// Issue 13, item 3: psd is down when a job finishes, for longer than the worker keeps offering
// its result (the old worker: 60 s, then it deleted its checkpoints). The worker keeps the
// checkpoint and pins the published outputs with a manifest; the restarted psd relaunches and the
// new attempt adopts the verified outputs instead of training again. Training itself never
// waits on the missing psd (checkpoint reports are asynchronous).
TEST_F(WorkerFaults, FinishedResultSurvivesAPsdOutageAndIsAdoptedWithoutARerun) {
  const fs::path data = PS_SHARED_DATA;
  const std::string psworker = BinaryPath("worker/tools/psworker");
  if (!fs::exists(data / "codelm-19m") || !fs::exists(psworker))
    GTEST_SKIP() << "needs " << data / "codelm-19m"
                 << " and " << psworker;
  WriteFileAtomic(dir_ / "job.yaml", "name: outage\nmodel: " + (data / "codelm-19m").string() +
                                         "\npattern: \"2:4\"\ndevice: cpu\ndtype: fp32\n"
                                         "method: {name: proxsparse, lambda1: 4.0, lr: 1.0e-3, "
                                         "max_steps: 6, batch_size: 2}\n"
                                         "calibration: {path: " +
                                         (data / "code-calib.jsonl.gz").string() +
                                         ", samples: 8, seqlen: 32}\n"
                                         "evaluation: {ppl: [" +
                                         (data / "code-eval.txt").string() +
                                         "], ctx: 32, max_windows: 1}\n"
                                         "checkpoint: {every_steps: 2}\n");
  // The worker offers its result for 2 s only: the outage below is longer.
  SetEnv("PS_RESULT_RETRY_S", "2");
  SetEnv("PS_REPORT_RETRY_S", "2");
  const int port = FreePort();
  std::vector<std::string> flags = {"--worker-bin", psworker,           "--heartbeat-timeout",
                                    "60",           "--launch-timeout", "120"};
  if (!std::getenv("PS_TEST_BINARY_DIR"))  // (an older psd, to show the failure, lacks the flag)
    flags.insert(flags.end(), {"--allowed-roots", data.string()});
  Psd& psd = StartPsd(flags, port);
  std::string id = Submit(dir_ / "job.yaml");
  json j = psd.WaitState(id, "JOB_STATE_RUNNING", 60);
  ASSERT_EQ(j["state"], "JOB_STATE_RUNNING") << j.dump(1);
  pid_t worker = WorkerPid(j);
  ASSERT_GT(worker, 1);
  const fs::path out = j["output_dir"].get<std::string>();
  psd.Kill9();  // the outage starts: everything from here on happens without psd
  auto t0 = std::chrono::steady_clock::now();
  // The worker trains, publishes, offers the result, gives up and exits by itself.
  bool exited = WaitFor([&] { return !Alive(worker); }, 150, 0.2);
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!exited) ::kill(-worker, SIGKILL);  // (the old worker: still retrying inline)
  EXPECT_TRUE(exited) << "the worker did not finish without psd within 150 s";
  ASSERT_TRUE(fs::exists(out / "report.json")) << "the job did not finish during the outage";
  const std::string report = Slurp(out / "report.json");
  // Kept for a relaunch: the manifest pinning the outputs and the last checkpoint.
  EXPECT_TRUE(fs::exists(out / ".result-manifest.json"));
  bool has_checkpoint = false;
  if (fs::is_directory(out / "checkpoints"))
    for (const auto& d : fs::directory_iterator(out / "checkpoints"))
      has_checkpoint |= fs::exists(d.path() / "manifest.json");
  EXPECT_TRUE(has_checkpoint) << "the last checkpoint was deleted before psd acknowledged";
  std::fprintf(stderr, "worker finished and gave up on psd %.1f s into the outage\n", took);

  psd.Start();  // the outage ends; the worker is gone, so psd relaunches
  j = psd.WaitState(id, "JOB_STATE_SUCCEEDED", 120);
  ASSERT_EQ(j["state"], "JOB_STATE_SUCCEEDED") << j.dump(1);
  EXPECT_EQ(j["attempt"], 2) << j["history"].dump(1);
  EXPECT_NE(j["message"].get<std::string>().find("adopted"), std::string::npos) << j["message"];
  CmdResult logs = psd.Ctl({"logs", id});
  std::string second = logs.out.substr(std::min(logs.out.find("=== attempt 2"), logs.out.size()));
  EXPECT_NE(second.find("adopting the outputs of an earlier attempt"), std::string::npos) << second;
  EXPECT_EQ(second.find("loading "), std::string::npos) << "attempt 2 ran the job again:\n"
                                                        << second;
  EXPECT_EQ(Slurp(out / "report.json"), report) << "the outputs were rewritten";
  // Acknowledged now: the checkpoints go.
  EXPECT_TRUE(WaitFor([&] { return !fs::exists(out / "checkpoints"); }, 20));
}

// Issue 13, item 4: psd requires client certificates (--tls-client-ca, the chart's
// tls.mutual: true) and workers present theirs (--worker-tls-cert/--worker-tls-key, passed by
// every launcher as --tls-cert/--tls-key): a job runs to SUCCEEDED.
TEST_F(WorkerFaults, MutualTlsJobRunsToSucceeded) {
  const std::string openssl = "/usr/bin/openssl";
  if (!fs::exists(openssl)) GTEST_SKIP() << "no openssl";
  auto ssl = [&](std::vector<std::string> args) {
    args.insert(args.begin(), openssl);
    CmdResult r = test::Run(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.rc == 0;
  };
  const std::string d = dir_.string();
  WriteFileAtomic(dir_ / "server.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  WriteFileAtomic(dir_ / "client.ext", "extendedKeyUsage=clientAuth\n");
  ASSERT_TRUE(ssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                   "/CN=proxsparse-test-ca", "-keyout", d + "/ca.key", "-out", d + "/ca.pem"}));
  for (const std::string who : {"server", "client"}) {
    ASSERT_TRUE(ssl({"req", "-newkey", "rsa:2048", "-nodes", "-subj",
                     who == "server" ? "/CN=localhost" : "/CN=psworker", "-keyout",
                     d + "/" + who + ".key", "-out", d + "/" + who + ".csr"}));
    ASSERT_TRUE(ssl({"x509", "-req", "-in", d + "/" + who + ".csr", "-CA", d + "/ca.pem", "-CAkey",
                     d + "/ca.key", "-CAcreateserial", "-days", "2", "-extfile",
                     d + "/" + who + ".ext", "-out", d + "/" + who + ".pem"}));
  }
  Psd& psd =
      StartPsd({"--tls-cert", d + "/server.pem", "--tls-key", d + "/server.key", "--tls-client-ca",
                d + "/ca.pem", "--worker-tls-ca", d + "/ca.pem", "--worker-tls-cert",
                d + "/client.pem", "--worker-tls-key", d + "/client.key"});
  // Without a client certificate psd lets nobody in.
  psd.ctl_prefix = {"--tls-ca", d + "/ca.pem"};
  CmdResult r = psd.Ctl({"--timeout", "3", "list"});
  EXPECT_NE(r.rc, 0) << "a client without a certificate was served";
  psd.ctl_prefix = {"--tls-ca",        d + "/ca.pem", "--tls-cert",
                    d + "/client.pem", "--tls-key",   d + "/client.key"};
  fs::path job =
      WriteJob(dir_, "mtls", "name: step_s=0.01\nmethod: {name: proxsparse, max_steps: 5}\n");
  r = psd.Ctl({"submit", job.string(), "--watch"}, {}, 60);
  EXPECT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("SUCCEEDED"), std::string::npos) << r.out << r.err;
}

// Issue 13, item 8 (identity): WorkerService calls need the credential psd issued to that job's
// attempt. A user's bearer token cannot report a job SUCCEEDED, nor can another job's worker.
TEST_F(WorkerFaults, ForgedWorkerReportsAreRefused) {
  WriteFileAtomic(dir_ / "token", "user-token-123\n");
  Psd& psd = StartPsd({"--token-file", (dir_ / "token").string(), "--max-jobs", "2"});
  psd.ctl_prefix = {"--token-file", (dir_ / "token").string()};
  fs::path job =
      WriteJob(dir_, "slow", "name: step_s=0.2\nmethod: {name: proxsparse, max_steps: 200}\n");
  std::string a = Submit(job), b;
  json ja = psd.WaitState(a, "JOB_STATE_RUNNING", 30);
  ASSERT_EQ(ja["state"], "JOB_STATE_RUNNING");

  auto channel = grpc::CreateChannel(psd.address(), grpc::InsecureChannelCredentials());
  auto workers = pb::WorkerService::NewStub(channel);
  auto report = [&](const std::string& bearer, const std::string& id, int attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    if (!bearer.empty()) ctx.AddMetadata("authorization", "Bearer " + bearer);
    pb::ReportResultRequest req;
    req.mutable_worker()->set_job_id(id);
    req.mutable_worker()->set_attempt(attempt);
    req.set_ok(true);
    req.set_message("forged");
    pb::ReportResultResponse resp;
    return workers->ReportResult(&ctx, req, &resp);
  };
  grpc::Status st = report("user-token-123", a, 1);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  st = report("", a, 1);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  // Another job's worker credential (it can read its own token file) does not work either.
  b = Submit(job);
  json jb = psd.WaitUntil(
      b, [](const json& x) { return x.value("state", "") != "JOB_STATE_QUEUED"; }, 30);
  fs::path b_token = fs::path(jb["job_dir"].get<std::string>()) / "credentials/attempt-1.token";
  if (fs::exists(b_token)) {
    std::string tb = Slurp(b_token);
    while (!tb.empty() && std::isspace(static_cast<unsigned char>(tb.back()))) tb.pop_back();
    st = report(tb, a, 1);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
    // And a worker credential is no user token.
    auto jobs = pb::JobService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + tb);
    pb::ListJobsRequest lreq;
    pb::ListJobsResponse lresp;
    st = jobs->ListJobs(&ctx, lreq, &lresp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  } else {
    ADD_FAILURE() << "psd issued no worker credential file " << b_token;
  }
  ja = psd.GetJob(a);
  EXPECT_EQ(ja["state"], "JOB_STATE_RUNNING") << "a forged report changed the job: " << ja.dump(1);
  // The real worker, with its own credential, still reports (progress moves on).
  int64_t step = Int(ja.value("progress", json::object()), "step");
  ja = psd.WaitUntil(
      a, [&](const json& x) { return Int(x.value("progress", json::object()), "step") > step; },
      10);
  EXPECT_GT(Int(ja.value("progress", json::object()), "step"), step);
  psd.Ctl({"cancel", a});
  psd.Ctl({"cancel", b});
}

// Issue 13, item 5: a FIFO or a device where psd or the worker reads a file fails at once with a
// clear error (it used to block psd's request thread for ever, or read /dev/zero without end);
// inputs outside --allowed-roots are refused the same way whether they exist or not.
TEST_F(WorkerFaults, FifoDeviceAndOutsidePathsAreRefusedAtOnce) {
  Psd& psd = StartPsd();
  auto submit = [&](const fs::path& job) {
    auto t0 = std::chrono::steady_clock::now();
    CmdResult r = psd.Ctl({"--timeout", "8", "submit", job.string()}, {}, 12);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(s, 5) << job << ": psd took " << s << " s to answer";
    EXPECT_EQ(r.rc, 3) << job << ": " << r.out << r.err;
    return r.err;
  };
  // config.json is a FIFO with no writer.
  fs::path fifo_dir = dir_ / "fifo";
  fs::path job = WriteJob(fifo_dir, "fifo", "name: fifo\nmethod: {name: wanda}\n");
  fs::remove(fifo_dir / "model/config.json");
  ASSERT_EQ(::mkfifo((fifo_dir / "model/config.json").c_str(), 0644), 0);
  std::string err = submit(job);
  EXPECT_NE(err.find("is a FIFO, expected a regular file"), std::string::npos) << err;
  // config.json is /dev/zero (through a link inside the allowed directory).
  fs::path zero_dir = dir_ / "zero";
  job = WriteJob(zero_dir, "zero", "name: zero\nmethod: {name: wanda}\n");
  fs::remove(zero_dir / "model/config.json");
  fs::create_symlink("/dev/zero", zero_dir / "model/config.json");
  err = submit(job);
  EXPECT_NE(err.find("is a character device, expected a regular file"), std::string::npos) << err;
  // calibration.path is /dev/zero, directly or through a link: outside the allowed roots.
  WriteJob(dir_ / "calib", "unused", "");
  fs::create_symlink("/dev/zero", dir_ / "calib/zero.txt");
  job = dir_ / "calib/calib.yaml";
  WriteFileAtomic(job, "model: model\ncalibration: {path: zero.txt}\nmethod: {name: wanda}\n");
  err = submit(job);
  EXPECT_NE(err.find("calibration.path"), std::string::npos) << err;
  WriteFileAtomic(job, "model: model\ncalibration: {path: /dev/zero}\nmethod: {name: wanda}\n");
  err = submit(job);
  EXPECT_NE(err.find("calibration.path"), std::string::npos) << err;
  // Outside the roots: the same answer for a path that exists and one that does not.
  WriteFileAtomic(dir_ / "calib/etc.yaml",
                  "model: /etc\ncalibration: {path: zero.txt}\nmethod: {name: wanda}\n");
  WriteFileAtomic(dir_ / "calib/none.yaml",
                  "model: /nonexistent-dir\ncalibration: {path: zero.txt}\nmethod: {name: "
                  "wanda}\n");
  std::string e1 = submit(dir_ / "calib/etc.yaml"), e2 = submit(dir_ / "calib/none.yaml");
  EXPECT_NE(e1.find("not under a directory this psd accepts job inputs from"), std::string::npos)
      << e1;
  EXPECT_NE(e2.find("not under a directory this psd accepts job inputs from"), std::string::npos)
      << e2;
  // psd is still well.
  CmdResult r = psd.Ctl({"--timeout", "5", "list"});
  EXPECT_EQ(r.rc, 0) << r.err;
}

// Issue 13, items 6 and 8: hostile job files are clear errors at submit: a 10 MB name, names
// with control characters, duplicate keys, invalid UTF-8 and binary files, ranks and memory
// beyond what psd offers.
TEST_F(WorkerFaults, HostileJobFilesAreClearErrorsAtSubmit) {
  Psd& psd = StartPsd();
  fs::path base = WriteJob(dir_, "base", "method: {name: wanda}\n");
  const std::string body = Slurp(base);
  // Straight to psd (psctl checks too): a 10 MB name.
  auto channel = grpc::CreateChannel(psd.address(), grpc::InsecureChannelCredentials());
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  auto stub = pb::JobService::NewStub(
      grpc::CreateCustomChannel(psd.address(), grpc::InsecureChannelCredentials(), args));
  auto direct = [&](const std::string& yaml) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 20s);
    pb::SubmitJobRequest req;
    req.set_yaml(yaml);
    req.set_base_dir(dir_.string());
    pb::Job job;
    return stub->SubmitJob(&ctx, req, &job);
  };
  grpc::Status st = direct(body + "name: \"" + std::string(10 << 20, 'x') + "\"\n");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("at most 1048576 (1 MiB)"), std::string::npos)
      << st.error_message().substr(0, 300);
  st = direct(body + "name: \"" + std::string(300, 'x') + "\"\n");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("name: is 300 bytes long; at most 256"), std::string::npos)
      << st.error_message();
  st = direct(body + "name: \"\\e[31mred\\e[0m\"\n");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("name: contains a control character"), std::string::npos)
      << st.error_message();

  auto submit = [&](const std::string& name, const std::string& text) {
    WriteFileAtomic(dir_ / name, text);
    return psd.Ctl({"submit", (dir_ / name).string()});
  };
  CmdResult r = submit("dup.yaml", body + "seed: 1\nseed: 2\n");
  EXPECT_EQ(r.rc, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("seed: duplicate key (first at line"), std::string::npos) << r.err;
  r = submit("dup2.yaml", body + "resources: {ranks: 1, ranks: 2}\n");
  EXPECT_NE(r.err.find("resources.ranks: duplicate key"), std::string::npos) << r.err;
  r = submit("latin1.yaml", body + "name: caf\xe9\n");
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("invalid UTF-8 at byte offset"), std::string::npos) << r.err;
  r = submit("binary.yaml", std::string("\x7f"
                                        "ELF\x02\x01\x01\0\0\0",
                                        10) +
                                body);
  EXPECT_EQ(r.rc, 3) << r.err;
  EXPECT_NE(r.err.find("NUL byte"), std::string::npos) << r.err;
  r = submit("ranks.yaml", body + "resources: {ranks: 4096}\n");
  EXPECT_EQ(r.rc, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("resources.ranks: the job asks for 4096 ranks"), std::string::npos) << r.err;
  r = submit("mem.yaml", body + "resources: {memory_gb: 1e300}\n");
  EXPECT_EQ(r.rc, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("resources.memory_gb: must be <="), std::string::npos) << r.err;
  r = submit("mem2.yaml", body + "resources: {memory_gb: 100000}\n");
  EXPECT_EQ(r.rc, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("(psd --max-memory-gb)"), std::string::npos) << r.err;
  // Nothing of that reached the store.
  r = psd.Ctl({"-o", "json", "list"});
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.find("\"id\""), std::string::npos) << r.out.substr(0, 500);
}

}  // namespace
}  // namespace ps::test

// End-to-end tests of the service: psd + psctl + workers as real processes on loopback.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <future>

#include "common/file_util.h"
#include "tests/server/service_fixture.h"

namespace ps::test {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class ServiceTest : public ServiceFixture {
 protected:
  static int64_t Int(const json& j, const char* k, int64_t def = 0) {
    if (!j.contains(k)) return def;
    return j[k].is_string() ? std::stoll(j[k].get<std::string>()) : j[k].get<int64_t>();
  }
};

TEST_F(ServiceTest, JobRunsThroughEveryStateAndPublishesArtifacts) {
  Psd& psd = StartPsd();
  fs::path job = WriteJob(dir_, "ok",
                          "name: step_s=0.02\nmethod: {name: proxsparse, max_steps: 12}\n"
                          "checkpoint: {every_steps: 5}\n");
  CmdResult r = psd.Ctl({"submit", job.string(), "--watch"});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  std::string id = r.out.substr(0, r.out.find('\n'));
  EXPECT_NE(r.out.find("SUCCEEDED"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("step 12/12"), std::string::npos) << r.err;  // the progress display
  json j = psd.GetJob(id);
  EXPECT_EQ(StatesOf(j), (std::vector<std::string>{"JOB_STATE_QUEUED", "JOB_STATE_LAUNCHING",
                                                   "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"}));
  EXPECT_EQ(j["attempt"], 1);
  EXPECT_EQ(Int(j["progress"], "step"), 12);
  EXPECT_EQ(Int(j, "checkpoint_step"), 10);
  EXPECT_EQ(j["spec"]["method"]["name"], "proxsparse");
  EXPECT_EQ(j["spec_hash"].get<std::string>().size(), 64u);

  // Artifacts: listed without checkpoints, downloaded byte-exact.
  r = psd.Ctl({"-o", "json", "artifacts", id});
  ASSERT_EQ(r.rc, 0) << r.err;
  json a = json::parse(r.out);
  std::vector<std::string> paths;
  for (const auto& x : a["artifacts"]) paths.push_back(x["path"]);
  EXPECT_EQ(paths, (std::vector<std::string>{"history.csv", "masks.bin", "model/config.json",
                                             "report.json"}));
  fs::path dl = dir_ / "download";
  r = psd.Ctl({"artifacts", id, "--download", dl.string()});
  ASSERT_EQ(r.rc, 0) << r.err;
  fs::path out = fs::path(j["output_dir"].get<std::string>());
  for (const auto& p : paths) EXPECT_EQ(ReadFile(dl / p), ReadFile(out / p)) << p;
  EXPECT_EQ(fs::file_size(dl / "masks.bin"), 2u * 1024 * 1024 + 7);

  // Logs, and the table views.
  r = psd.Ctl({"logs", id});
  ASSERT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("fake worker: job " + id + " attempt 1"), std::string::npos) << r.out;
  r = psd.Ctl({"list"});
  EXPECT_NE(r.out.find(id), std::string::npos);
  EXPECT_NE(r.out.find("SUCCEEDED"), std::string::npos);
  r = psd.Ctl({"get", id});
  EXPECT_NE(r.out.find("RUNNING -> SUCCEEDED"), std::string::npos) << r.out;
  r = psd.Ctl({"-o", "yaml", "get", id});
  EXPECT_NE(r.out.find("state: JOB_STATE_SUCCEEDED"), std::string::npos) << r.out;
}

TEST_F(ServiceTest, InvalidJobFilesAreRejectedNamingTheField) {
  Psd& psd = StartPsd();
  struct Case {
    std::string body, expect;
  };
  std::vector<Case> cases = {
      {"method: {name: proxsparse, lamda1: 1}\n", "method.lamda1: unknown key"},
      {"method: {name: proxsparse, lambda1: -2}\n", "method.lambda1: must be >= 0"},
      {"method: {name: wanda}\npattern: \"2:3\"\n", "pattern: hidden_size = 64"},
      {"method: {name: wanda}\nevaluation: {ppl: [missing.txt]}\n", "evaluation.ppl[0]: "},
      {"method: {name: wanda}\ndevice: cuda\nresources: {gpus_per_rank: 1}\n",
       "resources.gpus_per_rank: the job needs 1 GPUs"},
  };
  for (const auto& c : cases) {
    fs::path job = WriteJob(dir_, "bad", c.body);
    CmdResult r = psd.Ctl({"submit", job.string()});
    EXPECT_EQ(r.rc, 3) << c.body << r.err;
    EXPECT_NE(r.err.find("invalid: " + c.expect), std::string::npos) << r.err;
  }
  CmdResult r = psd.Ctl({"submit", (dir_ / "nope.yaml").string()});
  EXPECT_EQ(r.rc, 3);
  r = psd.Ctl({"get", "j999999"});
  EXPECT_EQ(r.rc, 4) << r.err;
  r = psd.Ctl({"list", "--state", "sleeping"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("unknown job state 'sleeping'"), std::string::npos);
  EXPECT_EQ(psd.Ctl({"frobnicate"}).rc, 2);
  r = psd.Ctl({"list"});
  EXPECT_EQ(r.out.find("j0000"), std::string::npos) << "nothing was queued: " << r.out;
}

TEST_F(ServiceTest, CancelStopsTheWorkersWithinSeconds) {
  Psd& psd = StartPsd();
  fs::path job =
      WriteJob(dir_, "long", "name: step_s=0.2\nmethod: {name: proxsparse, max_steps: 500}\n");
  std::string id = Submit(job);
  json j = psd.WaitUntil(
      id, [](const json& x) { return x.contains("progress"); }, 20);
  ASSERT_EQ(j["state"], "JOB_STATE_RUNNING");
  pid_t worker = WorkerPid(j);
  ASSERT_GT(worker, 0);
  ASSERT_TRUE(Alive(worker));
  CmdResult r = psd.Ctl({"cancel", id, "--reason", "test"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("CANCELLED"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return !Alive(worker); }, 5)) << "worker " << worker << " survived";
  j = psd.GetJob(id);
  EXPECT_EQ(j["state"], "JOB_STATE_CANCELLED");
  EXPECT_EQ(j["message"], "cancelled: test");
  r = psd.Ctl({"watch", id});
  EXPECT_EQ(r.rc, 11);
  // Cancelling a queued job: with max-jobs 1 a second job waits behind the first.
  std::string a = Submit(job), b = Submit(job);
  psd.WaitState(a, "JOB_STATE_RUNNING", 20);
  EXPECT_EQ(psd.GetJob(b)["state"], "JOB_STATE_QUEUED");
  EXPECT_EQ(psd.Ctl({"cancel", b}).rc, 0);
  EXPECT_EQ(psd.GetJob(b)["state"], "JOB_STATE_CANCELLED");
  EXPECT_EQ(psd.Ctl({"cancel", a}).rc, 0);
  r = psd.Ctl({"list", "--state", "cancelled"});
  EXPECT_NE(r.out.find(a), std::string::npos);
  EXPECT_NE(r.out.find(b), std::string::npos);
}

TEST_F(ServiceTest, KilledWorkerIsRetriedFromItsCheckpoint) {
  Psd& psd = StartPsd();
  fs::path job = WriteJob(dir_, "retry",
                          "name: step_s=0.05\nmethod: {name: proxsparse, max_steps: 60}\n"
                          "checkpoint: {every_steps: 5}\n");
  std::string id = Submit(job);
  json j = psd.WaitUntil(
      id, [&](const json& x) { return Int(x, "checkpoint_step", -1) >= 10; }, 30);
  pid_t worker = WorkerPid(j);
  ASSERT_GT(worker, 0);
  ::kill(worker, SIGKILL);
  j = psd.WaitState(id, "JOB_STATE_SUCCEEDED", 40);
  ASSERT_EQ(j["state"], "JOB_STATE_SUCCEEDED") << j.dump(1);
  EXPECT_EQ(j["attempt"], 2);
  auto states = StatesOf(j);
  EXPECT_EQ(states,
            (std::vector<std::string>{
                "JOB_STATE_QUEUED", "JOB_STATE_LAUNCHING", "JOB_STATE_RUNNING", "JOB_STATE_QUEUED",
                "JOB_STATE_LAUNCHING", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED"}));
  std::string why = j["history"][3]["message"];
  EXPECT_NE(why.find("killed by signal 9"), std::string::npos) << why;
  EXPECT_NE(why.find("retrying from the checkpoint of step"), std::string::npos) << why;
  CmdResult r = psd.Ctl({"logs", id});
  EXPECT_NE(r.out.find("resumed from step"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--resume"), std::string::npos);
}

TEST_F(ServiceTest, CrashesAreRetriedUpToMaxAttemptsThenFail) {
  Psd& psd = StartPsd({"--max-attempts", "2"});
  fs::path job = WriteJob(dir_, "crash",
                          "name: crash_at=3,crash_always,step_s=0.01\n"
                          "method: {name: proxsparse, max_steps: 10}\n");
  CmdResult r = psd.Ctl({"submit", job.string(), "--watch"});
  EXPECT_EQ(r.rc, 10) << r.out << r.err;
  std::string id = r.out.substr(0, r.out.find('\n'));
  json j = psd.GetJob(id);
  EXPECT_EQ(j["state"], "JOB_STATE_FAILED");
  EXPECT_EQ(j["attempt"], 2);
  std::string msg = j["message"];
  EXPECT_NE(msg.find("attempt 2 of 2 failed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("exit code 3"), std::string::npos) << msg;
  // A crash on the first attempt only: the second succeeds.
  fs::path once = WriteJob(dir_, "once",
                           "name: crash_at=3,step_s=0.01\n"
                           "method: {name: proxsparse, max_steps: 6}\n");
  r = psd.Ctl({"submit", once.string(), "--watch"});
  EXPECT_EQ(r.rc, 0) << r.err;
  // A failure the worker reports itself is final.
  fs::path rep = WriteJob(dir_, "rep",
                          "name: report_fail,step_s=0.01\n"
                          "method: {name: proxsparse, max_steps: 3}\n");
  r = psd.Ctl({"submit", rep.string(), "--watch"});
  EXPECT_EQ(r.rc, 10);
  id = r.out.substr(0, r.out.find('\n'));
  j = psd.GetJob(id);
  EXPECT_EQ(j["attempt"], 1);
  EXPECT_NE(j["message"].get<std::string>().find("loss diverged"), std::string::npos);
}

TEST_F(ServiceTest, SilentWorkerIsKilledAndRetried) {
  Psd& psd = StartPsd();
  fs::path job = WriteJob(dir_, "hang",
                          "name: hang_at=4,step_s=0.02\n"
                          "method: {name: proxsparse, max_steps: 8}\n");
  std::string id = Submit(job);
  json j = psd.WaitState(id, "JOB_STATE_SUCCEEDED", 30);
  ASSERT_EQ(j["state"], "JOB_STATE_SUCCEEDED") << j.dump(1);
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_NE(j["history"][3]["message"].get<std::string>().find("no heartbeat"), std::string::npos);
}

TEST_F(ServiceTest, CoordinatorKilledMidJobReattachesOrRelaunches) {
  int port = FreePort();
  Psd& psd = StartPsd({}, port);
  fs::path job = WriteJob(dir_, "survive",
                          "name: step_s=0.1\nmethod: {name: proxsparse, max_steps: 40}\n"
                          "checkpoint: {every_steps: 5}\n");
  std::string a = Submit(job);
  json j = psd.WaitUntil(
      a, [&](const json& x) { return Int(x, "checkpoint_step", -1) >= 5; }, 30);
  pid_t worker = WorkerPid(j);
  psd.Kill9();
  ASSERT_TRUE(Alive(worker));  // workers do not die with psd
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  psd.Start();  // same store, same port: the worker's reports reach the new psd
  j = psd.WaitState(a, "JOB_STATE_SUCCEEDED", 30);
  ASSERT_EQ(j["state"], "JOB_STATE_SUCCEEDED") << j.dump(1);
  EXPECT_EQ(j["attempt"], 1) << "re-attached, not relaunched: " << j["history"].dump(1);
  EXPECT_EQ(Int(j["progress"], "step"), 40);

  // Now psd and the worker both die: the restarted psd relaunches from the checkpoint.
  std::string b = Submit(job);
  j = psd.WaitUntil(
      b, [&](const json& x) { return Int(x, "checkpoint_step", -1) >= 10; }, 30);
  worker = WorkerPid(j);
  ASSERT_GT(worker, 1);
  psd.Kill9();
  ::kill(-worker, SIGKILL);
  ASSERT_TRUE(WaitFor([&] { return !Alive(worker); }, 5));
  psd.Start();
  j = psd.WaitState(b, "JOB_STATE_SUCCEEDED", 40);
  ASSERT_EQ(j["state"], "JOB_STATE_SUCCEEDED") << j.dump(1);
  EXPECT_EQ(j["attempt"], 2);
  std::string why = j["history"][3]["message"];
  EXPECT_NE(why.find("while psd was down"), std::string::npos) << why;
  CmdResult r = psd.Ctl({"logs", b});
  EXPECT_NE(r.out.find("resumed from step"), std::string::npos);
  // Nothing lost: both jobs, their ids and history are in the store.
  r = psd.Ctl({"list", "--state", "succeeded"});
  EXPECT_NE(r.out.find(a), std::string::npos);
  EXPECT_NE(r.out.find(b), std::string::npos);
}

TEST_F(ServiceTest, BearerTokenIsRequiredWhenConfigured) {
  WriteFileAtomic(dir_ / "token", "s3cret-token\n");
  WriteFileAtomic(dir_ / "wrong", "nope\n");
  Psd& psd = StartPsd({"--token-file", (dir_ / "token").string()});
  CmdResult r = psd.Ctl({"list"});
  EXPECT_EQ(r.rc, 6) << r.err;
  EXPECT_NE(r.err.find("needs a bearer token"), std::string::npos) << r.err;
  r = psd.Ctl({"--token-file", (dir_ / "wrong").string(), "list"});
  EXPECT_EQ(r.rc, 6);
  EXPECT_NE(r.err.find("not valid"), std::string::npos) << r.err;
  // Through the environment, as scripts do; the worker authenticates with the same token.
  fs::path job =
      WriteJob(dir_, "auth", "name: step_s=0.01\nmethod: {name: proxsparse, max_steps: 5}\n");
  r = psd.Ctl({"submit", job.string(), "--watch"},
              {{"PSCTL_TOKEN_FILE", (dir_ / "token").string()}});
  EXPECT_EQ(r.rc, 0) << r.err;
  // And through the config file.
  WriteFileAtomic(dir_ / "psctl.yaml", "token_file: token\n");
  r = psd.Ctl({"list"}, {{"PSCTL_CONFIG", (dir_ / "psctl.yaml").string()}});
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST_F(ServiceTest, TlsServesPsctlAndWorkers) {
  CmdResult gen =
      test::Run({"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                 "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                 "-keyout", (dir_ / "key.pem").string(), "-out", (dir_ / "cert.pem").string()});
  if (gen.rc != 0) GTEST_SKIP() << "openssl cannot make a certificate: " << gen.err;
  std::string ca = (dir_ / "cert.pem").string();
  Psd& psd =
      StartPsd({"--tls-cert", ca, "--tls-key", (dir_ / "key.pem").string(), "--worker-tls-ca", ca});
  CmdResult r = psd.Ctl({"--timeout", "3", "list"});
  EXPECT_EQ(r.rc, 5) << "plaintext against TLS must fail: " << r.err;
  psd.ctl_prefix = {"--tls-ca", ca};
  fs::path job =
      WriteJob(dir_, "tls", "name: step_s=0.01\nmethod: {name: proxsparse, max_steps: 5}\n");
  r = psd.Ctl({"submit", job.string(), "--watch"});
  EXPECT_EQ(r.rc, 0) << r.err;
}

TEST_F(ServiceTest, ListPagesAndFiltersAndMetricsServe) {
  Psd& psd = StartPsd({"--max-jobs", "2"});
  fs::path job = WriteJob(dir_, "many", "name: step_s=0.01\nmethod: {name: wanda}\n");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Submit(job));
  for (const auto& id : ids) psd.WaitState(id, "JOB_STATE_SUCCEEDED", 30);
  CmdResult r = psd.Ctl({"-o", "json", "list", "--limit", "3"});
  json l = json::parse(r.out);
  ASSERT_EQ(l["jobs"].size(), 3u);
  EXPECT_EQ(l["jobs"][0]["id"], ids[0]);
  EXPECT_EQ(l["jobs"][2]["id"], ids[2]);
  r = psd.Ctl({"-o", "json", "list", "--state", "failed"});
  EXPECT_EQ(json::parse(r.out).value("jobs", json::array()).size(), 0u);
  r = test::Run({"/usr/bin/curl", "-sf", "http://" + psd.metrics_address() + "/metrics"});
  if (r.rc == 127) GTEST_SKIP() << "no curl";
  EXPECT_NE(r.out.find("proxsparse_jobs{state=\"SUCCEEDED\"} 5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("proxsparse_job_step{job_id=\"" + ids[0] + "\",method=\"wanda\"} 20"),
            std::string::npos);
  EXPECT_NE(
      r.out.find("proxsparse_grpc_requests_total{method=\"JobService/SubmitJob\",code=\"OK\"}"),
      std::string::npos);
}

// A real Prometheus (Debian's package) scrapes psd's /metrics on loopback; its HTTP API must
// return the job's series, every metric of docs/metrics.md must be served, and promtool must
// accept the exposition.
TEST_F(ServiceTest, PrometheusScrapesTheJobMetrics) {
  if (!fs::exists("/usr/bin/prometheus") || !fs::exists("/usr/bin/promtool") ||
      !fs::exists("/usr/bin/curl"))
    GTEST_SKIP() << "prometheus, promtool or curl not installed (scripts/install-deps.sh)";
  Psd& psd = StartPsd({"--max-jobs", "2"});
  // A finished job, for the result gauges (perplexity, published N:M fraction).
  fs::path done =
      WriteJob(dir_, "done", "name: step_s=0.01\nmethod: {name: proxsparse, max_steps: 2}\n");
  psd.WaitState(Submit(done), "JOB_STATE_SUCCEEDED", 30);
  fs::path job = WriteJob(dir_, "prom",
                          "name: step_s=0.1\nmethod: {name: proxsparse, max_steps: 600}\n"
                          "checkpoint: {every_steps: 5}\n");
  std::string id = Submit(job);
  psd.WaitUntil(
      id, [&](const json& x) { return Int(x, "checkpoint_step", -1) >= 5; }, 30);
  std::string url = "http://" + psd.metrics_address() + "/metrics";
  CmdResult m = test::Run({"/usr/bin/curl", "-sf", url});
  ASSERT_EQ(m.rc, 0) << m.err;
  WriteFileAtomic(dir_ / "metrics.txt", m.out);
  CmdResult check = test::Run(
      {"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + (dir_ / "metrics.txt").string()});
  EXPECT_EQ(check.rc, 0) << check.out << check.err;
  // Every metric named in docs/metrics.md has at least one sample.
  std::ifstream doc(fs::path(PS_SOURCE_DIR) / "docs/metrics.md");
  int names = 0;
  for (std::string line; std::getline(doc, line);) {
    if (line.rfind("| `proxsparse_", 0) != 0) continue;
    std::string name = line.substr(3, line.find('`', 3) - 3);
    ++names;
    bool sampled = m.out.find("\n" + name + "{") != std::string::npos ||
                   m.out.find("\n" + name + " ") != std::string::npos ||
                   m.out.find("\n" + name + "_bucket{") != std::string::npos;
    EXPECT_TRUE(sampled) << name << " has no sample in\n" << m.out;
  }
  EXPECT_GE(names, 20);

  int port = FreePort();
  std::string prom_addr = "127.0.0.1:" + std::to_string(port);
  WriteFileAtomic(dir_ / "prometheus.yml",
                  "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                  "scrape_configs:\n  - job_name: psd\n    static_configs:\n"
                  "      - targets: ['" +
                      psd.metrics_address() + "']\n");
  pid_t prom = Spawn(
      {"/usr/bin/prometheus", "--config.file=" + (dir_ / "prometheus.yml").string(),
       "--storage.tsdb.path=" + (dir_ / "tsdb").string(), "--web.listen-address=" + prom_addr},
      dir_ / "prometheus.log");
  std::string query = "http://" + prom_addr + "/api/v1/query?query=proxsparse_job_step";
  CmdResult q;
  bool found = WaitFor(
      [&] {
        q = test::Run({"/usr/bin/curl", "-sf", query}, {}, 5);
        return q.rc == 0 && q.out.find("\"job_id\":\"" + id + "\"") != std::string::npos;
      },
      40, 0.5);
  ::kill(prom, SIGTERM);
  int st;
  ::waitpid(prom, &st, 0);
  ASSERT_TRUE(found) << q.out << q.err << ReadFile(dir_ / "prometheus.log");
  json r = json::parse(q.out);
  EXPECT_EQ(r["status"], "success");
  json series;
  for (const auto& s : r["data"]["result"])
    if (s["metric"]["job_id"] == id) series = s;
  ASSERT_FALSE(series.is_null()) << q.out;
  EXPECT_EQ(series["metric"]["method"], "proxsparse");
  EXPECT_GE(std::stod(series["value"][1].get<std::string>()), 5);
  psd.Ctl({"cancel", id});
}

// The Slurm launcher against a real one-node Slurm (munged, slurmctld, slurmd started by
// scripts/slurm-local.sh): sbatch, squeue/scontrol tracking, scancel.
TEST_F(ServiceTest, SlurmLauncherRunsJobsEndToEnd) {
  if (::geteuid() != 0 || !fs::exists("/usr/sbin/slurmctld") || !fs::exists("/usr/sbin/munged"))
    GTEST_SKIP() << "needs root and slurm-wlm + munge (scripts/install-deps.sh)";
  std::string sdir = "/tmp/ps-slurm-" + std::to_string(::getpid());
  std::string script = std::string(PS_SOURCE_DIR) + "/scripts/slurm-local.sh";
  CmdResult up = test::Run({"/bin/bash", script, "start"}, {{"SLURM_LOCAL_DIR", sdir}}, 60);
  struct Stop {
    std::string script, dir;
    ~Stop() {
      test::Run({"/bin/bash", script, "stop"}, {{"SLURM_LOCAL_DIR", dir}}, 30);
      fs::remove_all(dir);
    }
  } stop{script, sdir};
  ASSERT_EQ(up.rc, 0) << up.out << up.err;
  ::setenv("SLURM_CONF", (sdir + "/slurm.conf").c_str(), 1);  // psd's sbatch/squeue find it
  Psd& psd = StartPsd({"--launcher", "slurm", "--launch-timeout", "60"});
  fs::path job = WriteJob(dir_, "slurm",
                          "name: step_s=0.02\nmethod: {name: proxsparse, max_steps: 10}\n"
                          "resources: {memory_gb: 0.2, time_limit_minutes: 5}\n");
  CmdResult r = psd.Ctl({"submit", job.string(), "--watch"}, {}, 120);
  ASSERT_EQ(r.rc, 0) << r.out << r.err << ReadFile(psd.log());
  std::string id = r.out.substr(0, r.out.find('\n'));
  json j = psd.GetJob(id);
  EXPECT_EQ(j["launcher"], "slurm");
  std::string slurm_id = j["launcher_id"];
  EXPECT_FALSE(slurm_id.empty());
  EXPECT_EQ(slurm_id.find_first_not_of("0123456789"), std::string::npos) << slurm_id;
  EXPECT_TRUE(fs::exists(fs::path(j["job_dir"].get<std::string>()) / "attempt-1.sbatch"));
  r = psd.Ctl({"logs", id});
  EXPECT_NE(r.out.find("(Slurm job " + slurm_id + ")"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fake worker: job " + id), std::string::npos) << r.out;
  // Cancel goes through scancel: the Slurm job leaves the queue within seconds.
  fs::path long_job = WriteJob(dir_, "slurm-long",
                               "name: step_s=0.2\nmethod: {name: proxsparse, max_steps: 500}\n"
                               "resources: {memory_gb: 0.2}\n");
  std::string id2 = Submit(long_job);
  j = psd.WaitUntil(
      id2, [](const json& x) { return x.contains("progress"); }, 60);
  ASSERT_EQ(j["state"], "JOB_STATE_RUNNING") << j.dump(1);
  std::string sid2 = j["launcher_id"];
  EXPECT_EQ(psd.Ctl({"cancel", id2}).rc, 0);
  EXPECT_TRUE(WaitFor(
      [&] {
        CmdResult q = test::Run({"/usr/bin/squeue", "-h", "-j", sid2});
        return q.out.find(sid2) == std::string::npos;
      },
      15, 0.2));
}

// The standard health service answers SERVING. Called through the generic stub with hand-made
// bytes: HealthCheckRequest{} is empty, HealthCheckResponse{status: SERVING} is 08 01.
TEST_F(ServiceTest, HealthCheckingIsServed) {
  Psd& psd = StartPsd();
  auto channel = grpc::CreateChannel(psd.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer request, response;
  grpc::Slice empty("");
  request = grpc::ByteBuffer(&empty, 1);
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status st) { done.set_value(st); });
  grpc::Status st = done.get_future().get();
  ASSERT_TRUE(st.ok()) << st.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

}  // namespace
}  // namespace ps::test

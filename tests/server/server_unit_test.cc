// Unit tests of psd's parts: metrics text format, the job store, artifact listing, and the
// Slurm / Kubernetes renderings (golden files; kubectl and promtool where installed).
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "common/error.h"
#include "common/file_util.h"
#include "server/artifacts.h"
#include "server/job_store.h"
#include "server/launcher.h"
#include "server/metrics.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

using ps::testing::TempDir;

std::string SampleText() {
  MetricsRegistry m;
  m.Declare("proxsparse_up", MetricsRegistry::Type::kGauge, "1 while psd serves");
  m.Declare("proxsparse_job_loss", MetricsRegistry::Type::kGauge, "last loss");
  m.Declare("proxsparse_job_failures_total", MetricsRegistry::Type::kCounter, "failures");
  m.Declare("proxsparse_grpc_request_duration_seconds", MetricsRegistry::Type::kHistogram,
            "latency", {0.01, 0.1, 1});
  m.Set("proxsparse_up", {}, 1);
  m.Set("proxsparse_job_loss", {{"job_id", "j000001"}, {"method", "a\"b\\c\nd"}}, 2.5);
  m.Add("proxsparse_job_failures_total", {}, 2);
  for (double v : {0.005, 0.05, 0.5, 5.0})
    m.Observe("proxsparse_grpc_request_duration_seconds", {{"method", "JobService/GetJob"}}, v);
  return m.Render();
}

TEST(Metrics, RendersTheTextFormat) {
  std::string text = SampleText();
  EXPECT_NE(text.find("# TYPE proxsparse_up gauge\nproxsparse_up 1\n"), std::string::npos);
  EXPECT_NE(text.find("proxsparse_job_loss{job_id=\"j000001\",method=\"a\\\"b\\\\c\\nd\"} 2.5\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("# TYPE proxsparse_job_failures_total counter\n"
                      "proxsparse_job_failures_total 2\n"),
            std::string::npos);
  const std::string h = "proxsparse_grpc_request_duration_seconds";
  EXPECT_NE(text.find(h + "_bucket{method=\"JobService/GetJob\",le=\"0.01\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(h + "_bucket{method=\"JobService/GetJob\",le=\"0.10000000000000001\"} 2\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(h + "_bucket{method=\"JobService/GetJob\",le=\"+Inf\"} 4\n"),
            std::string::npos);
  EXPECT_NE(text.find(h + "_count{method=\"JobService/GetJob\"} 4\n"), std::string::npos);
  EXPECT_NE(text.find(h + "_sum{method=\"JobService/GetJob\"} 5.5549999999999997\n"),
            std::string::npos)
      << text;
}

TEST(Metrics, ValuesAndMisuse) {
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
  EXPECT_EQ(FormatMetricValue(-HUGE_VAL), "-Inf");
  EXPECT_EQ(FormatMetricValue(3), "3");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  MetricsRegistry m;
  EXPECT_THROW(m.Set("undeclared", {}, 1), Error);
  m.Declare("c_total", MetricsRegistry::Type::kCounter, "c");
  EXPECT_THROW(m.Set("c_total", {}, 1), Error);
  EXPECT_THROW(m.Observe("c_total", {}, 1), Error);
}

TEST(Metrics, PromtoolAcceptsTheOutput) {
  if (!fs::exists("/usr/bin/promtool")) GTEST_SKIP() << "promtool not installed";
  TempDir d("promtool");
  WriteFileAtomic(d.path() / "m.txt", SampleText());
  std::string out;
  int rc =
      RunCommand({"sh", "-c", "promtool check metrics < " + (d.path() / "m.txt").string()}, &out);
  EXPECT_EQ(rc, 0) << out;
}

TEST(JobStore, PersistsJobsAndNeverReusesIds) {
  TempDir d("store");
  fs::path db = d.path() / "sub" / "psd.db";
  {
    auto store = OpenSqliteJobStore(db);
    JobStore& s = *store;
    EXPECT_EQ(s.NextId(), "j000001");
    std::string id = s.NextId();
    EXPECT_EQ(id, "j000002");
    proxsparse::v1::Job j;
    j.set_id(id);
    j.set_state(proxsparse::v1::JOB_STATE_RUNNING);
    j.set_message("hello");
    s.Put(j);
    j.set_message("updated");
    s.Put(j);
  }
  auto store = OpenSqliteJobStore(db);
  JobStore& s = *store;
  auto all = s.LoadAll().jobs;
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].id(), "j000002");
  EXPECT_EQ(all[0].message(), "updated");
  EXPECT_EQ(s.NextId(), "j000003");
  std::string out;
  RunCommand({"sqlite3", db.string(), "PRAGMA journal_mode"}, &out);
  if (out.find("not found") == std::string::npos && !out.empty()) {
    EXPECT_EQ(out, "wal\n");
  }
}

TEST(JobStore, ReportsAnUnusablePath) {
  EXPECT_THROW(OpenSqliteJobStore("/proc/no/such/dir/psd.db"), StoreError);
}

TEST(Artifacts, ListsPublishedFilesAndNothingOutside) {
  TempDir d("artifacts");
  fs::path out = d.path() / "output";
  fs::create_directories(out / "model");
  fs::create_directories(out / "checkpoints/step-5");
  WriteFileAtomic(out / "report.json", "{}");
  WriteFileAtomic(out / "model/config.json", "{}");
  WriteFileAtomic(out / "checkpoints/step-5/state", "5");
  WriteFileAtomic(out / ".hidden", "x");
  WriteFileAtomic(d.path() / "secret.txt", "outside");
  fs::create_symlink(d.path() / "secret.txt", out / "link.txt");
  auto list = ListArtifactFiles(out);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].path, "model/config.json");
  EXPECT_EQ(list[1].path, "report.json");
  EXPECT_EQ(list[1].sha256, Sha256File(out / "report.json"));
  EXPECT_TRUE(ResolveArtifact(out, "report.json"));
  for (const char* bad : {"../secret.txt", "link.txt", "/etc/passwd", "model/../../secret.txt",
                          "checkpoints/step-5/state", ".hidden", "", "model"})
    EXPECT_FALSE(ResolveArtifact(out, bad)) << bad;
  EXPECT_TRUE(ListArtifactFiles(d.path() / "none").empty());
}

LaunchRequest SampleRequest(int ranks) {
  LaunchRequest r;
  r.job_id = "j000042";
  r.attempt = 2;
  r.spec.resources.ranks = ranks;
  r.spec.resources.cpus_per_rank = 4;
  r.spec.resources.gpus_per_rank = ranks > 1 ? 1 : 0;
  r.spec.resources.memory_gb = 16;
  r.spec.resources.time_limit_minutes = 90;
  r.job_dir = "/srv/psd/jobs/j000042";
  r.log_file = "/srv/psd/jobs/j000042/logs/worker.log";
  r.worker_bin = "/usr/bin/psworker";
  r.worker_args = {"--job",         "/srv/psd/jobs/j000042/job.yaml",
                   "--output",      "/srv/psd/jobs/j000042/out put",
                   "--coordinator", "psd.example:50051",
                   "--job-id",      "j000042",
                   "--attempt",     "2",
                   "--resume"};
  return r;
}

// Compares with tests/server/golden/NAME; PS_UPDATE_GOLDEN=1 rewrites the file instead.
void ExpectGolden(const std::string& name, const std::string& text) {
  fs::path p = fs::path(PS_SOURCE_DIR) / "tests/server/golden" / name;
  if (std::getenv("PS_UPDATE_GOLDEN")) WriteFileAtomic(p, text);
  ASSERT_TRUE(fs::exists(p)) << p << " missing; run with PS_UPDATE_GOLDEN=1";
  EXPECT_EQ(text, ReadFile(p)) << "differs from " << p;
}

TEST(SlurmLauncher, SbatchScriptMatchesGolden) {
  SlurmLauncherOptions o;
  o.partition = "gpu";
  o.srun_args = {"--mpi=pmix"};
  o.sbatch_lines = {"--exclusive"};
  std::string s = RenderSbatchScript(SampleRequest(4), o);
  ExpectGolden("slurm-4ranks.sbatch", s);
  EXPECT_NE(s.find("--output '/srv/psd/jobs/j000042/out put'"), std::string::npos);
  TempDir d("sbatch");
  WriteFileAtomic(d.path() / "x.sh", s);
  std::string out;
  EXPECT_EQ(RunCommand({"bash", "-n", (d.path() / "x.sh").string()}, &out), 0) << out;
}

TEST(KubernetesLauncher, ManifestsMatchGoldenAndKubectlParsesThem) {
  KubernetesLauncherOptions o;
  o.namespace_ = "pruning";
  o.image = "registry.example/proxsparse-worker:0.1.0";
  o.pvc = "psd-data";
  o.mount_path = "/srv/psd/jobs";
  std::string job = RenderKubernetesManifest(SampleRequest(1), o);
  std::string mpi = RenderKubernetesManifest(SampleRequest(4), o);
  ExpectGolden("k8s-job-1rank.yaml", job);
  ExpectGolden("k8s-mpijob-4ranks.yaml", mpi);
  EXPECT_NE(job.find("kind: Job"), std::string::npos);
  EXPECT_NE(mpi.find("kind: MPIJob"), std::string::npos);
  EXPECT_NE(mpi.find("apiVersion: kubeflow.org/v2beta1"), std::string::npos);
  // Every container command element must be a string (Kubernetes rejects numbers there).
  for (const std::string& text : {job, mpi})
    for (const auto& doc : YAML::LoadAll(text)) {
      std::function<void(const YAML::Node&)> walk = [&](const YAML::Node& n) {
        if (n.IsMap()) {
          for (const auto& kv : n) {
            if (kv.first.Scalar() == "command") {
              for (const auto& c : kv.second) {
                EXPECT_EQ(c.Tag(), "!") << c.Scalar();
              }
            }
            walk(kv.second);
          }
        } else if (n.IsSequence()) {
          for (const auto& c : n) walk(c);
        }
      };
      walk(doc);
    }
  std::string kubectl;
  for (const char* p : {"/usr/bin/kubectl", "/usr/local/bin/kubectl"})
    if (fs::exists(p)) kubectl = p;
  if (kubectl.empty()) GTEST_SKIP() << "kubectl not installed";
  // No cluster here, and `kubectl create --dry-run=client` needs the API server's discovery
  // documents to map kinds, so it cannot run offline. `kubectl label --local` decodes every
  // object of the file client-side (apiVersion/kind/metadata) without a server.
  TempDir d("k8s");
  WriteFileAtomic(d.path() / "kubeconfig",
                  "apiVersion: v1\nkind: Config\nclusters: [{name: none, cluster: {server: "
                  "\"https://127.0.0.1:1\"}}]\nusers: [{name: none, user: {token: x}}]\n"
                  "contexts: [{name: none, context: {cluster: none, user: none}}]\n"
                  "current-context: none\n");
  WriteFileAtomic(d.path() / "job.yaml", job);
  WriteFileAtomic(d.path() / "mpi.yaml", mpi);
  std::string out;
  int rc = RunCommand({kubectl, "--kubeconfig", (d.path() / "kubeconfig").string(), "label",
                       "--local", "-o", "name", "-f", (d.path() / "job.yaml").string(), "-f",
                       (d.path() / "mpi.yaml").string(), "checked=yes"},
                      &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("service/ps-j000042-a2"), std::string::npos) << out;
  EXPECT_NE(out.find("job.batch/ps-j000042-a2"), std::string::npos) << out;
  EXPECT_NE(out.find("mpijob.kubeflow.org/ps-j000042-a2"), std::string::npos) << out;
}

}  // namespace
}  // namespace ps

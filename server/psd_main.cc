// psd: the ProxSparse coordinator. Flags (or a YAML file of the same keys, --config) configure
// the store, the launcher, limits and security; it serves the gRPC API (with health checking and
// reflection) and Prometheus metrics on /metrics. Stopping psd leaves running workers alone: a
// restarted psd re-attaches to them.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/error.h"
#include "common/file_util.h"
#include "server/api_service.h"
#include "server/coordinator.h"
#include "server/data_dir_lock.h"
#include "server/http_endpoints.h"
#include "server/job_store.h"
#include "server/log.h"
#include "server/result_metrics.h"
#include "server/worker_credentials.h"

#ifndef PS_VERSION
#define PS_VERSION "dev"
#endif

namespace ps {
namespace {

namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
// Bad flags exit with this (CLI11's own codes are >= 100); other failures with 1.
constexpr int kUsageExit = 2;
struct UsageError : Error {
  using Error::Error;
};

// "30d", "12h", "90m", "45s", "3600" (seconds) or "0" (off) -> seconds.
double ParseDuration(const std::string& text, const char* flag) {
  size_t used = 0;
  double v = -1;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  double scale = unit.empty() || unit == "s" ? 1
                 : unit == "m"               ? 60
                 : unit == "h"               ? 3600
                 : unit == "d"               ? 86400
                                             : -1;
  if (used == 0 || scale < 0 || !(v >= 0))
    throw UsageError(std::string(flag) +
                     ": expected a duration like 30d, 12h, 90m or 0 (off), got '" + text + "'");
  return v * scale;
}
void OnSignal(int) { g_stop = true; }

struct PsdOptions {
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9464";
  std::string advertise;
  std::string data_dir;
  std::string hub_cache;
  std::string db;
  std::string launcher = "local";
  std::string worker_bin;
  std::string mpirun = "mpirun";
  std::vector<std::string> mpirun_args;
  int max_jobs = 1;
  int max_cpus = 0;
  int max_gpus = 0;
  double gpu_memory_gib = 0;
  int max_attempts = 3;
  double heartbeat_timeout = 30;
  double launch_timeout = 300;
  int heartbeat_interval_ms = 2000;
  double kill_grace = 5;
  std::string token_file;
  std::string tls_cert, tls_key, tls_client_ca;
  std::string worker_tls_ca;
  std::string worker_tls_cert, worker_tls_key;
  std::string worker_key_file;
  std::vector<std::string> allowed_roots;
  int max_ranks = 256;
  double max_memory_gb = -1;
  std::string ready_file;
  std::string log_format = "text";
  std::string retain_finished = "0";
  double retry_backoff = 1;
  double retry_backoff_max = 300;
  int http_workers = 64;
  double http_timeout = 5;
  // Slurm.
  std::string slurm_partition, slurm_account, slurm_bin_dir;
  std::vector<std::string> slurm_sbatch_lines, slurm_srun_args;
  // Kubernetes.
  std::string k8s_kubectl = "kubectl", k8s_namespace = "default",
              k8s_image = "proxsparse/worker:latest", k8s_pvc, k8s_mount_path, k8s_service_account;
};

// YAML config: every key is a flag name without the leading dashes ('_' or '-'); lists become
// repeated flags. They go before the real arguments, and the last value wins, so flags override.
std::vector<std::string> ConfigArgs(const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw Error("--config " + file + ": " + e.what());
  }
  std::vector<std::string> out;
  if (root.IsNull()) return out;
  if (!root.IsMap()) throw Error("--config " + file + ": must be a mapping of flag: value");
  for (const auto& kv : root) {
    std::string key = kv.first.Scalar();
    std::replace(key.begin(), key.end(), '_', '-');
    if (kv.second.IsSequence()) {
      for (const auto& v : kv.second) out.push_back("--" + key + "=" + v.Scalar());
    } else if (kv.second.IsScalar()) {
      out.push_back("--" + key + "=" + kv.second.Scalar());
    } else {
      throw Error("--config " + file + ": " + key + ": must be a value or a list");
    }
  }
  return out;
}

// Every job the coordinator knows, for the result gauges.
std::vector<proxsparse::v1::Job> AllJobs(Coordinator& c) {
  std::vector<proxsparse::v1::Job> all;
  proxsparse::v1::ListJobsRequest req;
  req.set_page_size(1000);
  for (;;) {
    auto page = c.List(req);
    for (auto& j : *page.mutable_jobs()) all.push_back(std::move(j));
    if (page.next_page_token().empty()) return all;
    req.set_page_token(page.next_page_token());
  }
}

void DeclareMetrics(MetricsRegistry& m) {
  using T = MetricsRegistry::Type;
  m.Declare("proxsparse_up", T::kGauge, "1 while psd serves");
  m.Declare("proxsparse_build_info", T::kGauge, "psd build; always 1");
  m.Declare("proxsparse_jobs", T::kGauge, "jobs in each state");
  m.Declare("proxsparse_queue_length", T::kGauge, "jobs waiting for resources");
  m.Declare("proxsparse_job_attempts", T::kGauge, "attempts so far");
  m.Declare("proxsparse_job_failures_total", T::kCounter,
            "attempts that ended in failure (retried or not)");
  m.Declare("proxsparse_job_step", T::kGauge, "current optimizer step");
  m.Declare("proxsparse_job_total_steps", T::kGauge, "planned steps");
  m.Declare("proxsparse_job_loss", T::kGauge, "last reported training loss");
  m.Declare("proxsparse_job_nm_sparse_ratio", T::kGauge, "fraction of groups already N:M sparse");
  m.Declare("proxsparse_job_three_sparse_ratio", T::kGauge,
            "fraction of groups with 3 non-zeros (2:4)");
  m.Declare("proxsparse_job_dense_ratio", T::kGauge, "fraction of dense groups");
  m.Declare("proxsparse_job_mask_flips", T::kGauge, "top-N mask changes since the previous report");
  m.Declare("proxsparse_job_prox_capped_groups", T::kGauge,
            "prox groups stopped at the iteration cap so far (0 when every prox is exact)");
  m.Declare("proxsparse_job_learning_rate", T::kGauge, "current learning rate");
  m.Declare("proxsparse_job_tokens_per_second", T::kGauge, "training throughput, all ranks");
  m.Declare("proxsparse_job_eta_seconds", T::kGauge, "estimated time to completion");
  m.Declare("proxsparse_job_step_phase_seconds", T::kGauge, "last step's time split by phase");
  m.Declare("proxsparse_job_last_progress_timestamp_seconds", T::kGauge,
            "unix time of the last progress report");
  m.Declare("proxsparse_job_checkpoint_age_seconds", T::kGauge,
            "seconds since the last complete checkpoint");
  m.Declare("proxsparse_job_heartbeat_age_seconds", T::kGauge,
            "seconds since the last worker heartbeat");
  m.Declare("proxsparse_worker_gpu_memory_bytes", T::kGauge, "GPU memory in use (NVML)");
  m.Declare("proxsparse_worker_gpu_utilization_ratio", T::kGauge, "GPU utilisation 0..1 (NVML)");
  DeclareApiMetrics(m);
  DeclareResultMetrics(m);
}

std::string DefaultWorkerBin() {
  // psworker beside psd (build tree: ../worker/tools/psworker), else PATH.
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (fs::path p : {self.parent_path() / "psworker",
                       self.parent_path().parent_path() / "worker/tools/psworker"})
      if (fs::exists(p)) return p.string();
  }
  return "psworker";
}

int Run(int argc, char** argv) {
  PsdOptions o;
  CLI::App app{"psd: the ProxSparse coordinator (gRPC job service, scheduler, launchers)"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string config;
  app.add_option("--config", config, "YAML file of the flags below (flags given here win)");
  app.add_option("--listen", o.listen, "gRPC address (port 0: pick a free one)")
      ->capture_default_str();
  app.add_option("--metrics-listen", o.metrics_listen, "/metrics address; empty: off")
      ->capture_default_str();
  app.add_option("--advertise", o.advertise,
                 "address workers use to reach psd (default: the listen address)");
  app.add_option("--data-dir", o.data_dir, "job directories and the store (default ./psd-data)");
  app.add_option("--hub-cache", o.hub_cache,
                 "where model: hf://ORG/NAME jobs are downloaded (default DATA_DIR/hub)");
  app.add_option("--db", o.db, "SQLite store (default DATA_DIR/psd.db)");
  app.add_option("--launcher", o.launcher, "local | slurm | kubernetes")
      ->check(CLI::IsMember({"local", "slurm", "kubernetes"}))
      ->capture_default_str();
  app.add_option("--worker-bin", o.worker_bin, "worker program (default: psworker beside psd)");
  app.add_option("--mpirun", o.mpirun, "mpirun for multi-rank local jobs")->capture_default_str();
  app.add_option("--mpirun-arg", o.mpirun_args, "extra mpirun argument (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--max-jobs", o.max_jobs, "jobs running at once")->capture_default_str();
  app.add_option("--max-cpus", o.max_cpus, "CPUs for all running jobs (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-gpus", o.max_gpus, "GPUs for all running jobs")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--gpu-memory", o.gpu_memory_gib,
                 "GiB per GPU: refuse cuda jobs the memory planner says cannot fit (0: no check)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--max-attempts", o.max_attempts, "attempts per job (default for submits)")
      ->check(CLI::Range(1, kMaxAttemptsCap))
      ->capture_default_str();
  app.add_option("--heartbeat-timeout", o.heartbeat_timeout, "seconds without heartbeat = dead")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--launch-timeout", o.launch_timeout, "seconds from launch to Register")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--heartbeat-interval-ms", o.heartbeat_interval_ms, "told to workers")
      ->check(CLI::Range(10, 3600000))
      ->capture_default_str();
  app.add_option("--kill-grace", o.kill_grace, "seconds between SIGTERM and SIGKILL")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--allowed-roots", o.allowed_roots,
                 "directory job inputs (model, calibration, evaluation) must lie under "
                 "(repeatable; the data dir is always one; '/' allows every path)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--max-ranks", o.max_ranks, "ranks one job may ask for")->capture_default_str();
  app.add_option("--max-memory-gb", o.max_memory_gb,
                 "memory one job may ask for (default: this machine's memory with the local "
                 "launcher; 0: no limit beyond the job file's)");
  app.add_option("--token-file", o.token_file, "bearer token required on every call");
  app.add_option("--tls-cert", o.tls_cert, "server certificate (PEM); enables TLS");
  app.add_option("--tls-key", o.tls_key, "server private key (PEM)");
  app.add_option("--tls-client-ca", o.tls_client_ca, "require client certificates from this CA");
  app.add_option("--worker-tls-ca", o.worker_tls_ca, "CA file workers use to verify psd");
  app.add_option("--worker-tls-cert", o.worker_tls_cert,
                 "client certificate workers present (mTLS: signed by --tls-client-ca's CA)");
  app.add_option("--worker-tls-key", o.worker_tls_key, "private key of --worker-tls-cert");
  app.add_option("--worker-key-file", o.worker_key_file,
                 "key of the per-job worker credentials (default: worker-credentials.key beside "
                 "the store; created on first start; keep it off the workers' volume)");
  app.add_option("--ready-file", o.ready_file, "write {grpc, metrics} addresses here when up");
  app.add_option("--log-format", o.log_format, "text | json (one object per line)")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--retain-finished", o.retain_finished,
                 "delete finished jobs (record and files) this long after they end: 30d, 12h, "
                 "90m; 0: keep them")
      ->capture_default_str();
  app.add_option("--retry-backoff", o.retry_backoff,
                 "seconds before the first retry; doubles per attempt, with jitter")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--retry-backoff-max", o.retry_backoff_max, "longest retry delay in seconds")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--http-workers", o.http_workers,
                 "connections /metrics and /healthz serve at once")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--http-timeout", o.http_timeout,
                 "seconds an HTTP client may take to send a request or read a reply")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--slurm-partition", o.slurm_partition);
  app.add_option("--slurm-account", o.slurm_account);
  app.add_option("--slurm-bin-dir", o.slurm_bin_dir, "where sbatch/squeue/sacct/scancel are");
  app.add_option("--slurm-sbatch-line", o.slurm_sbatch_lines, "extra #SBATCH line (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--slurm-srun-arg", o.slurm_srun_args, "extra srun argument (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--k8s-kubectl", o.k8s_kubectl)->capture_default_str();
  app.add_option("--k8s-namespace", o.k8s_namespace)->capture_default_str();
  app.add_option("--k8s-image", o.k8s_image, "worker image")->capture_default_str();
  app.add_option("--k8s-pvc", o.k8s_pvc, "PersistentVolumeClaim holding --data-dir");
  app.add_option("--k8s-mount-path", o.k8s_mount_path, "where pods mount it (default data dir)");
  app.add_option("--k8s-service-account", o.k8s_service_account);
  app.set_version_flag("--version", PS_VERSION);

  // Pre-pass for --config: its values become flags placed before the real ones.
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc) {
      for (auto& c : ConfigArgs(argv[i + 1])) args.push_back(c);
    } else if (a.rfind("--config=", 0) == 0) {
      for (auto& c : ConfigArgs(a.substr(9))) args.push_back(c);
    }
  }
  for (int i = 1; i < argc; ++i) args.push_back(argv[i]);
  std::reverse(args.begin(), args.end());  // CLI11 takes a reversed vector
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kUsageExit;
  }
  InitLogging(o.log_format == "json" ? LogFormat::kJson : LogFormat::kText);
  double retain_s = ParseDuration(o.retain_finished, "--retain-finished");
  try {
    SplitHostPort(o.listen, "--listen");
    if (!o.metrics_listen.empty()) SplitHostPort(o.metrics_listen, "--metrics-listen");
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
  if (o.retry_backoff_max < o.retry_backoff)
    throw UsageError("--retry-backoff-max must be >= --retry-backoff");

  if (o.data_dir.empty()) o.data_dir = "psd-data";
  fs::path data_dir = fs::absolute(o.data_dir);
  fs::create_directories(data_dir);
  DataDirLock data_lock(data_dir);  // before the store: a second psd stops here
  if (o.db.empty()) o.db = (data_dir / "psd.db").string();
  if (o.worker_bin.empty()) o.worker_bin = DefaultWorkerBin();
  if (o.tls_cert.empty() != o.tls_key.empty()) throw Error("--tls-cert and --tls-key go together");
  if (!o.tls_client_ca.empty() && o.tls_cert.empty())
    throw Error("--tls-client-ca needs --tls-cert and --tls-key");
  if (o.worker_tls_cert.empty() != o.worker_tls_key.empty())
    throw UsageError("--worker-tls-cert and --worker-tls-key go together");
  if (!o.tls_client_ca.empty() && o.worker_tls_cert.empty())
    throw UsageError(
        "--tls-client-ca requires client certificates, and workers are clients too: give them "
        "one with --worker-tls-cert and --worker-tls-key (docs/service.md, Security)");
  std::string token;
  if (!o.token_file.empty()) {
    token = ReadFile(o.token_file);
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back())))
      token.pop_back();
    if (token.empty()) throw Error("--token-file " + o.token_file + " is empty");
  }

  std::unique_ptr<Launcher> launcher;
  if (o.launcher == "local") {
    launcher = MakeLocalLauncher({o.mpirun, o.mpirun_args});
  } else if (o.launcher == "slurm") {
    launcher = MakeSlurmLauncher({o.slurm_partition, o.slurm_account, o.slurm_sbatch_lines,
                                  o.slurm_srun_args, o.slurm_bin_dir});
  } else {
    launcher = MakeKubernetesLauncher({o.k8s_kubectl, o.k8s_namespace, o.k8s_image, o.k8s_pvc,
                                       o.k8s_mount_path, o.k8s_service_account});
  }

  // Every launcher passes the worker the same extra flags: its attempt's credential and, for
  // mTLS, the client certificate.
  if (o.worker_key_file.empty())
    o.worker_key_file = (fs::absolute(o.db).parent_path() / "worker-credentials.key").string();
  auto worker_credentials = std::make_shared<const WorkerCredentials>(o.worker_key_file);
  std::vector<std::string> worker_extra;
  if (!o.worker_tls_cert.empty())
    worker_extra = {"--tls-cert", fs::absolute(o.worker_tls_cert).string(), "--tls-key",
                    fs::absolute(o.worker_tls_key).string()};
  launcher = WithWorkerArgs(std::move(launcher), worker_credentials, worker_extra);

  MetricsRegistry metrics;
  DeclareMetrics(metrics);
  metrics.Set("proxsparse_up", {}, 1);
  metrics.Set("proxsparse_build_info", {{"version", PS_VERSION}}, 1);
  metrics.Add("proxsparse_job_failures_total", {}, 0);

  std::unique_ptr<JobStore> store = OpenSqliteJobStore(o.db);
  CoordinatorConfig cc;
  cc.data_dir = data_dir;
  cc.worker_bin = o.worker_bin;
  // Workers authenticate with their own credential, never with the users' token.
  cc.worker_token_file = "";
  cc.worker_tls_ca = o.worker_tls_ca;
  cc.max_jobs = o.max_jobs;
  cc.max_cpus = o.max_cpus;
  cc.max_gpus = o.max_gpus;
  cc.gpu_memory_gib = o.gpu_memory_gib;
  cc.max_attempts = o.max_attempts;
  cc.heartbeat_timeout_s = o.heartbeat_timeout;
  cc.launch_timeout_s = o.launch_timeout;
  cc.heartbeat_interval_ms = o.heartbeat_interval_ms;
  cc.kill_grace_s = o.kill_grace;
  cc.retry = {o.retry_backoff, o.retry_backoff_max};
  cc.retain_finished_s = retain_s;
  cc.submit_limits.allowed_roots.push_back(fs::weakly_canonical(data_dir));
  for (const auto& r : o.allowed_roots) {
    if (r.empty() || fs::path(r).is_relative())
      throw UsageError("--allowed-roots " + r + ": must be an absolute directory");
    cc.submit_limits.allowed_roots.push_back(fs::weakly_canonical(r));
  }
  if (o.max_ranks < 1 || o.max_ranks > kMaxJobRanks)
    throw UsageError("--max-ranks: must be 1.." + std::to_string(kMaxJobRanks));
  cc.submit_limits.max_ranks = o.max_ranks;
  cc.submit_limits.max_memory_gb =
      o.max_memory_gb >= 0 ? o.max_memory_gb : (o.launcher == "local" ? PhysicalMemoryGb() : 0);

  // gRPC server first: with port 0 the advertised address needs the chosen port.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!o.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl(
        o.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_key_cert_pairs.push_back({ReadFile(o.tls_key), ReadFile(o.tls_cert)});
    if (!o.tls_client_ca.empty()) ssl.pem_root_certs = ReadFile(o.tls_client_ca);
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  auto coordinator_ptr = std::make_unique<Coordinator>(cc, *store, std::move(launcher));
  Coordinator& coordinator = *coordinator_ptr;
  ApiContext api{&coordinator, &metrics, token,
                 o.hub_cache.empty() ? data_dir / "hub" : fs::absolute(o.hub_cache),
                 worker_credentials.get()};
  auto job_service = MakeJobService(api);
  auto worker_service = MakeWorkerService(api);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(o.listen, creds, &port);
  builder.RegisterService(job_service.get());
  builder.RegisterService(worker_service.get());
  builder.SetMaxReceiveMessageSize(16 << 20);
  // A second psd on the same port must fail, not silently share connections with the first.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0)
    throw Error("cannot listen on " + o.listen + " (in use? try another --listen port)");
  auto [host, _] = SplitHostPort(o.listen, "--listen");
  std::string bound =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  if (host == "0.0.0.0" || host == "::" || host.empty())
    bound = "127.0.0.1:" + std::to_string(port);
  // The coordinator's advertised address can only be set now; it is read at launch time.
  coordinator.SetAdvertise(o.advertise.empty() ? bound : o.advertise);

  std::unique_ptr<HttpEndpoints> http;
  std::string metrics_addr;
  if (!o.metrics_listen.empty()) {
    http = std::make_unique<HttpEndpoints>(
        HttpOptions{o.metrics_listen, o.http_workers, o.http_timeout, o.http_timeout,
                    o.http_timeout},
        [&] {
          coordinator.FillMetrics(metrics);
          FillResultMetrics(metrics, AllJobs(coordinator), coordinator.config().finished_metrics_s);
          metrics.Set("proxsparse_up", {}, 1);
          metrics.Clear("proxsparse_job_failures_total");
          metrics.Add("proxsparse_job_failures_total", {},
                      static_cast<double>(coordinator.failures_total()));
          return metrics.Render();
        });
    metrics_addr = http->Start();
  }

  coordinator.Start();
  LogEvent(spdlog::level::info, "psd.started",
           {{"version", PS_VERSION},
            {"grpc", bound + (o.tls_cert.empty() ? "" : " (TLS)")},
            {"metrics", metrics_addr.empty() ? "(off)" : "http://" + metrics_addr + "/metrics"},
            {"store", o.db},
            {"data_dir", data_dir.string()},
            {"launcher", o.launcher},
            {"worker", o.worker_bin}});
  if (!o.ready_file.empty())
    WriteFileAtomic(
        o.ready_file,
        nlohmann::json{{"grpc", bound}, {"metrics", metrics_addr}, {"pid", ::getpid()}}.dump());

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  LogEvent(spdlog::level::info, "psd.stopping",
           {{"note", "running workers keep going; a restarted psd re-attaches"}});
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  coordinator.Stop();
  if (http) http->Stop();
  return 0;
}

}  // namespace
}  // namespace ps

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  try {
    return ps::Run(argc, argv);
  } catch (const ps::UsageError& e) {
    std::fprintf(stderr, "psd: %s\n", e.what());
    return ps::kUsageExit;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "psd: %s\n", e.what());
    return 1;
  }
}

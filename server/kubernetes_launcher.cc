#include <yaml-cpp/yaml.h>

#include <algorithm>

#include "common/error.h"
#include "common/file_util.h"
#include "server/launcher.h"

namespace ps {
namespace {

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// Kubernetes names: lower case, digits, '-'.
std::string ObjectName(const LaunchRequest& req) {
  std::string id = req.job_id;
  std::transform(id.begin(), id.end(), id.begin(), [](unsigned char c) { return std::tolower(c); });
  return "ps-" + id + "-a" + std::to_string(req.attempt);
}

void EmitLabels(YAML::Emitter& e, const LaunchRequest& req) {
  e << YAML::Key << "labels" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "app.kubernetes.io/name" << YAML::Value << "proxsparse-worker";
  e << YAML::Key << "proxsparse.io/job-id" << YAML::Value << req.job_id;
  e << YAML::Key << "proxsparse.io/attempt" << YAML::Value << YAML::DoubleQuoted
    << std::to_string(req.attempt);
  e << YAML::EndMap;
}

// The pod template shared by the Job and the MPIJob's replicas.
void EmitPodSpec(YAML::Emitter& e, const LaunchRequest& req, const KubernetesLauncherOptions& o,
                 const std::vector<std::string>& command, bool with_resources,
                 const std::string& subdomain) {
  const ResourcesSpec& r = req.spec.resources;
  e << YAML::Key << "template" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
  EmitLabels(e, req);
  e << YAML::EndMap;
  e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "restartPolicy" << YAML::Value << "Never";
  if (!subdomain.empty()) e << YAML::Key << "subdomain" << YAML::Value << subdomain;
  if (!o.service_account.empty())
    e << YAML::Key << "serviceAccountName" << YAML::Value << o.service_account;
  e << YAML::Key << "containers" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << "worker";
  e << YAML::Key << "image" << YAML::Value << o.image;
  e << YAML::Key << "command" << YAML::Value << YAML::BeginSeq;
  for (const auto& c : command) e << YAML::DoubleQuoted << c;  // strings, even "2"

  e << YAML::EndSeq;
  if (with_resources) {
    e << YAML::Key << "resources" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "limits" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "cpu" << YAML::Value << YAML::DoubleQuoted << std::to_string(r.cpus_per_rank);
    e << YAML::Key << "memory" << YAML::Value
      << std::to_string(static_cast<long long>(r.memory_gb * 1024 / r.ranks + 0.5)) + "Mi";
    if (r.gpus_per_rank > 0)
      e << YAML::Key << "nvidia.com/gpu" << YAML::Value << YAML::DoubleQuoted
        << std::to_string(r.gpus_per_rank);
    e << YAML::EndMap << YAML::EndMap;
  }
  if (!o.pvc.empty()) {
    e << YAML::Key << "volumeMounts" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << "jobs";
    e << YAML::Key << "mountPath" << YAML::Value
      << (o.mount_path.empty() ? req.job_dir.parent_path().string() : o.mount_path);
    e << YAML::EndMap << YAML::EndSeq;
  }
  e << YAML::EndMap << YAML::EndSeq;  // containers
  if (!o.pvc.empty()) {
    e << YAML::Key << "volumes" << YAML::Value << YAML::BeginSeq << YAML::BeginMap;
    e << YAML::Key << "name" << YAML::Value << "jobs";
    e << YAML::Key << "persistentVolumeClaim" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "claimName" << YAML::Value << o.pvc << YAML::EndMap;
    e << YAML::EndMap << YAML::EndSeq;
  }
  e << YAML::EndMap;  // spec
  e << YAML::EndMap;  // template
}

void EmitMetadata(YAML::Emitter& e, const std::string& name, const LaunchRequest& req,
                  const KubernetesLauncherOptions& o) {
  e << YAML::Key << "metadata" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "name" << YAML::Value << name;
  e << YAML::Key << "namespace" << YAML::Value << o.namespace_;
  EmitLabels(e, req);
  e << YAML::EndMap;
}

class KubernetesLauncher : public Launcher {
 public:
  explicit KubernetesLauncher(KubernetesLauncherOptions o) : opts_(std::move(o)) {}
  std::string Name() const override { return "kubernetes"; }

  std::string Launch(const LaunchRequest& req) override {
    std::filesystem::path manifest =
        req.job_dir / ("attempt-" + std::to_string(req.attempt) + ".k8s.yaml");
    WriteFileAtomic(manifest, RenderKubernetesManifest(req, opts_));
    std::string out;
    if (RunCommand({opts_.kubectl, "apply", "-f", manifest.string()}, &out) != 0)
      throw Error("kubectl apply -f " + manifest.string() + " failed: " + Trim(out));
    std::string kind = req.spec.resources.ranks > 1 ? "mpijob" : "job";
    return kind + "/" + ObjectName(req);
  }

  RunStatus Poll(const std::string& id) override {
    std::string out;
    bool mpi = id.rfind("mpijob/", 0) == 0;
    std::string path = mpi ? "{range .status.conditions[*]}{.type}={.status};{end}"
                           : "{.status.active}|{.status.succeeded}|{.status.failed}";
    int rc = RunCommand(
        {opts_.kubectl, "-n", opts_.namespace_, "get", id, "-o", "jsonpath=" + path}, &out);
    if (rc != 0) {
      if (out.find("NotFound") != std::string::npos || out.find("not found") != std::string::npos)
        return {RunState::kGone, 0, id + " not found"};
      return {RunState::kRunning, 0, "kubectl get failed (assuming running): " + Trim(out)};
    }
    if (mpi) {
      if (out.find("Succeeded=True") != std::string::npos)
        return {RunState::kExited, 0, "Succeeded"};
      if (out.find("Failed=True") != std::string::npos) return {RunState::kExited, 1, "Failed"};
      if (out.find("Running=True") != std::string::npos) return {RunState::kRunning, 0, "Running"};
      return {RunState::kPending, 0, "Created"};
    }
    auto parts = Trim(out);
    // `|` separated fields, each possibly empty.
    std::vector<int> v = {0, 0, 0};
    size_t i = 0, k = 0;
    for (; k < 3 && i <= parts.size(); ++k) {
      size_t e = parts.find('|', i);
      std::string f = parts.substr(i, e == std::string::npos ? std::string::npos : e - i);
      v[k] = f.empty() ? 0 : std::atoi(f.c_str());
      if (e == std::string::npos) break;
      i = e + 1;
    }
    if (v[1] > 0) return {RunState::kExited, 0, "succeeded"};
    if (v[2] > 0) return {RunState::kExited, 1, "failed"};
    if (v[0] > 0) return {RunState::kRunning, 0, "active"};
    return {RunState::kPending, 0, "pending"};
  }

  void Terminate(const std::string& id, bool force) override {
    std::string out;
    std::vector<std::string> argv = {
        opts_.kubectl, "-n", opts_.namespace_, "delete", id, "--ignore-not-found", "--wait=false"};
    if (force) argv.insert(argv.end(), {"--grace-period=0", "--force"});
    RunCommand(argv, &out);
    std::string svc = id.substr(id.find('/') + 1);
    RunCommand({opts_.kubectl, "-n", opts_.namespace_, "delete", "service/" + svc,
                "--ignore-not-found", "--wait=false"},
               &out);
  }

 private:
  KubernetesLauncherOptions opts_;
};

}  // namespace

std::string RenderKubernetesManifest(const LaunchRequest& req, const KubernetesLauncherOptions& o) {
  const std::string name = ObjectName(req);
  std::vector<std::string> worker = {req.worker_bin};
  worker.insert(worker.end(), req.worker_args.begin(), req.worker_args.end());
  YAML::Emitter e;
  e << YAML::BeginDoc << YAML::BeginMap;
  // The headless Service gives every pod a stable DNS name (MPI ranks find each other by it).
  e << YAML::Key << "apiVersion" << YAML::Value << "v1";
  e << YAML::Key << "kind" << YAML::Value << "Service";
  EmitMetadata(e, name, req, o);
  e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "clusterIP" << YAML::Value << "None";
  e << YAML::Key << "selector" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "proxsparse.io/job-id" << YAML::Value << req.job_id;
  e << YAML::EndMap << YAML::EndMap;
  e << YAML::EndMap;
  e << YAML::BeginDoc << YAML::BeginMap;
  if (req.spec.resources.ranks == 1) {
    e << YAML::Key << "apiVersion" << YAML::Value << "batch/v1";
    e << YAML::Key << "kind" << YAML::Value << "Job";
    EmitMetadata(e, name, req, o);
    e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "backoffLimit" << YAML::Value << 0;  // psd owns retries
    e << YAML::Key << "activeDeadlineSeconds" << YAML::Value
      << req.spec.resources.time_limit_minutes * 60;
    EmitPodSpec(e, req, o, worker, true, name);
    e << YAML::EndMap;
  } else {
    // Kubeflow MPI Operator v2beta1: a launcher pod runs mpirun over the worker pods.
    e << YAML::Key << "apiVersion" << YAML::Value << "kubeflow.org/v2beta1";
    e << YAML::Key << "kind" << YAML::Value << "MPIJob";
    EmitMetadata(e, name, req, o);
    e << YAML::Key << "spec" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "slotsPerWorker" << YAML::Value << 1;
    e << YAML::Key << "runPolicy" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "backoffLimit" << YAML::Value << 0;
    e << YAML::Key << "activeDeadlineSeconds" << YAML::Value
      << req.spec.resources.time_limit_minutes * 60;
    e << YAML::Key << "cleanPodPolicy" << YAML::Value << "Running";
    e << YAML::EndMap;
    e << YAML::Key << "mpiImplementation" << YAML::Value << "OpenMPI";
    e << YAML::Key << "mpiReplicaSpecs" << YAML::Value << YAML::BeginMap;
    std::vector<std::string> launcher = {"mpirun", "-np", std::to_string(req.spec.resources.ranks),
                                         "--bind-to", "none"};
    launcher.insert(launcher.end(), worker.begin(), worker.end());
    e << YAML::Key << "Launcher" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "replicas" << YAML::Value << 1;
    EmitPodSpec(e, req, o, launcher, false, "");
    e << YAML::EndMap;
    e << YAML::Key << "Worker" << YAML::Value << YAML::BeginMap;
    e << YAML::Key << "replicas" << YAML::Value << req.spec.resources.ranks;
    EmitPodSpec(e, req, o, {"/usr/sbin/sshd", "-De"}, true, name);
    e << YAML::EndMap;
    e << YAML::EndMap;  // mpiReplicaSpecs
    e << YAML::EndMap;  // spec
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

std::unique_ptr<Launcher> MakeKubernetesLauncher(KubernetesLauncherOptions opts) {
  return std::make_unique<KubernetesLauncher>(std::move(opts));
}

}  // namespace ps

#include "proto/spec_convert.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>

#include "common/error.h"
#include "common/method_registry.h"

namespace ps {

namespace pb = proxsparse::v1;

pb::JobSpec JobSpecToProto(const JobSpec& s) {
  pb::JobSpec p;
  p.set_name(s.name);
  p.set_model(s.model.string());
  p.set_pattern(s.pattern.ToString());
  p.set_seed(s.seed);
  p.set_device(std::string(ChoiceName(s.device)));
  p.set_dtype(std::string(ChoiceName(s.dtype)));
  auto* m = p.mutable_method();
  m->set_name(s.method.name);
  m->set_lr(s.method.lr);
  m->set_warmup_ratio(s.method.warmup_ratio);
  m->set_epochs(s.method.epochs);
  m->set_max_steps(s.method.max_steps);
  m->set_batch_size(s.method.batch_size);
  m->set_grad_accum(s.method.grad_accum);
  m->set_master_dtype(std::string(ChoiceName(s.method.master_dtype)));
  m->set_overlap_update(s.method.overlap_update);
  m->set_lambda1(s.method.lambda1);
  m->set_lambda2(s.method.lambda2);
  m->set_epsilon(s.method.epsilon);
  m->set_trainable(std::string(ChoiceName(s.method.trainable)));
  m->set_hard(std::string(ChoiceName(s.method.hard)));
  m->set_blocksize(s.method.blocksize);
  m->set_percdamp(s.method.percdamp);
  for (double v : s.method.tau) m->add_tau(v);
  for (double v : s.method.kappa) m->add_kappa(v);
  m->set_prior(s.method.prior);
  m->set_prior_alpha(s.method.prior_alpha);
  m->set_sparse_reg(s.method.sparse_reg);
  p.mutable_masked_update()->set_steps(s.masked_update.steps);
  p.mutable_masked_update()->set_lr(s.masked_update.lr);
  p.set_reconstruct(s.reconstruct);
  auto* c = p.mutable_calibration();
  c->set_path(s.calibration.path.string());
  c->set_format(s.calibration.format);
  c->set_samples(s.calibration.samples);
  c->set_seqlen(s.calibration.seqlen);
  c->set_sampling(s.calibration.sampling);
  auto* e = p.mutable_evaluation();
  for (const auto& x : s.evaluation.ppl) e->add_ppl(x.string());
  e->set_ctx(s.evaluation.ctx);
  e->set_max_windows(s.evaluation.max_windows);
  for (const auto& x : s.evaluation.tasks) e->add_tasks(x.string());
  for (const auto& x : s.evaluation.baselines) e->add_baselines(x);
  p.set_output(s.output.string());
  p.mutable_checkpoint()->set_every_steps(s.checkpoint.every_steps);
  p.set_log_every(s.log_every);
  for (const auto& x : s.publish) p.add_publish(x);
  auto* r = p.mutable_resources();
  r->set_ranks(s.resources.ranks);
  r->set_gpus_per_rank(s.resources.gpus_per_rank);
  r->set_cpus_per_rank(s.resources.cpus_per_rank);
  r->set_memory_gb(s.resources.memory_gb);
  r->set_time_limit_minutes(s.resources.time_limit_minutes);
  return p;
}

JobSpec JobSpecFromProto(const pb::JobSpec& p) {
  // Rebuild the YAML the user would have written, leaving out fields at proto3's zero value so
  // that the parser's defaults and rules apply to anything the caller did not set.
  YAML::Node root;
  auto str = [](YAML::Node n, const char* k, const std::string& v) {
    if (!v.empty()) n[k] = v;
  };
  auto num = [](YAML::Node n, const char* k, auto v) {
    if (v != 0) n[k] = v;
  };
  str(root, "name", p.name());
  str(root, "model", p.model());
  str(root, "pattern", p.pattern());
  num(root, "seed", p.seed());
  str(root, "device", p.device());
  str(root, "dtype", p.dtype());
  if (p.has_method()) {
    const auto& m = p.method();
    YAML::Node y;
    str(y, "name", m.name());
    // Keys that do not apply to the method are dropped; a structured caller cannot "misspell".
    const MethodInfo* info = FindMethod(m.name());
    auto takes = [info](std::string_view key) {
      return info && std::find(info->keys.begin(), info->keys.end(), key) != info->keys.end();
    };
    if (takes("lr")) num(y, "lr", m.lr());
    if (takes("warmup_ratio")) num(y, "warmup_ratio", m.warmup_ratio());
    if (takes("epochs")) num(y, "epochs", m.epochs());
    if (takes("max_steps")) num(y, "max_steps", m.max_steps());
    if (takes("batch_size")) num(y, "batch_size", m.batch_size());
    if (takes("grad_accum")) num(y, "grad_accum", m.grad_accum());
    if (takes("master_dtype")) str(y, "master_dtype", m.master_dtype());
    if (takes("overlap_update") && m.overlap_update()) y["overlap_update"] = true;
    if (takes("lambda1")) num(y, "lambda1", m.lambda1());
    if (takes("lambda2")) num(y, "lambda2", m.lambda2());
    if (takes("epsilon")) num(y, "epsilon", m.epsilon());
    if (takes("trainable")) str(y, "trainable", m.trainable());
    if (takes("hard")) str(y, "hard", m.hard());
    if (takes("blocksize")) num(y, "blocksize", m.blocksize());
    if (takes("percdamp")) num(y, "percdamp", m.percdamp());
    if (takes("tau") && m.tau_size())
      y["tau"] = std::vector<double>(m.tau().begin(), m.tau().end());
    if (takes("kappa") && m.kappa_size())
      y["kappa"] = std::vector<double>(m.kappa().begin(), m.kappa().end());
    if (takes("prior")) str(y, "prior", m.prior());
    if (takes("prior_alpha")) num(y, "prior_alpha", m.prior_alpha());
    if (takes("sparse_reg")) num(y, "sparse_reg", m.sparse_reg());
    root["method"] = y;
  }
  if (p.has_masked_update()) {
    YAML::Node y(YAML::NodeType::Map);
    num(y, "steps", p.masked_update().steps());
    num(y, "lr", p.masked_update().lr());
    root["masked_update"] = y;
  }
  str(root, "reconstruct", p.reconstruct());
  if (p.has_calibration()) {
    const auto& c = p.calibration();
    YAML::Node y(YAML::NodeType::Map);
    str(y, "path", c.path());
    str(y, "format", c.format());
    num(y, "samples", c.samples());
    num(y, "seqlen", c.seqlen());
    str(y, "sampling", c.sampling());
    root["calibration"] = y;
  }
  if (p.has_evaluation()) {
    const auto& e = p.evaluation();
    YAML::Node y(YAML::NodeType::Map);
    y["ppl"] = std::vector<std::string>(e.ppl().begin(), e.ppl().end());
    num(y, "ctx", e.ctx());
    y["max_windows"] = e.max_windows();
    y["tasks"] = std::vector<std::string>(e.tasks().begin(), e.tasks().end());
    if (e.baselines_size())
      y["baselines"] = std::vector<std::string>(e.baselines().begin(), e.baselines().end());
    root["evaluation"] = y;
  }
  str(root, "output", p.output());
  if (p.publish_size())  // empty: the default for the pattern
    root["publish"] = std::vector<std::string>(p.publish().begin(), p.publish().end());
  if (p.has_checkpoint()) root["checkpoint"]["every_steps"] = p.checkpoint().every_steps();
  num(root, "log_every", p.log_every());
  if (p.has_resources()) {
    const auto& r = p.resources();
    YAML::Node y(YAML::NodeType::Map);
    num(y, "ranks", r.ranks());
    y["gpus_per_rank"] = r.gpus_per_rank();
    num(y, "cpus_per_rank", r.cpus_per_rank());
    num(y, "memory_gb", r.memory_gb());
    num(y, "time_limit_minutes", r.time_limit_minutes());
    root["resources"] = y;
  }
  YAML::Emitter out;
  out.SetDoublePrecision(17);
  out << root;
  return ParseJobSpec(out.c_str(), "/", "spec");
}

pb::ProgressEvent ProgressToProto(const ProgressEvent& e) {
  pb::ProgressEvent p;
  p.set_step(e.step);
  p.set_total_steps(e.total_steps);
  p.set_stage(e.stage);
  p.set_unit(e.unit);
  auto known = [](double v) { return !std::isnan(v); };
  if (known(e.loss)) p.set_loss(e.loss);
  if (known(e.nm_ratio)) p.set_nm_ratio(e.nm_ratio);
  if (known(e.mid_ratio)) p.set_mid_ratio(e.mid_ratio);
  if (known(e.dense_ratio)) p.set_dense_ratio(e.dense_ratio);
  if (e.mask_flips >= 0) p.set_mask_flips(e.mask_flips);
  if (e.prox_capped_groups >= 0) p.set_prox_capped_groups(e.prox_capped_groups);
  if (known(e.lr)) p.set_lr(e.lr);
  if (known(e.tokens_per_s)) p.set_tokens_per_s(e.tokens_per_s);
  if (known(e.eta_s)) p.set_eta_s(e.eta_s);
  for (const auto& [k, v] : e.phase_seconds) (*p.mutable_phase_seconds())[k] = v;
  p.set_rank(e.rank);
  if (e.gpu_mem_bytes >= 0) p.set_gpu_mem_bytes(e.gpu_mem_bytes);
  if (known(e.gpu_util)) p.set_gpu_util(e.gpu_util);
  return p;
}

ProgressEvent ProgressFromProto(const pb::ProgressEvent& p) {
  ProgressEvent e;
  e.step = p.step();
  e.total_steps = p.total_steps();
  e.stage = p.stage();
  e.unit = p.unit();
  if (p.has_loss()) e.loss = p.loss();
  if (p.has_nm_ratio()) e.nm_ratio = p.nm_ratio();
  if (p.has_mid_ratio()) e.mid_ratio = p.mid_ratio();
  if (p.has_dense_ratio()) e.dense_ratio = p.dense_ratio();
  if (p.has_mask_flips()) e.mask_flips = p.mask_flips();
  if (p.has_prox_capped_groups()) e.prox_capped_groups = p.prox_capped_groups();
  if (p.has_lr()) e.lr = p.lr();
  if (p.has_tokens_per_s()) e.tokens_per_s = p.tokens_per_s();
  if (p.has_eta_s()) e.eta_s = p.eta_s();
  for (const auto& [k, v] : p.phase_seconds()) e.phase_seconds[k] = v;
  e.rank = p.rank();
  if (p.has_gpu_mem_bytes()) e.gpu_mem_bytes = p.gpu_mem_bytes();
  if (p.has_gpu_util()) e.gpu_util = p.gpu_util();
  return e;
}

std::string JobStateName(pb::JobState s) {
  std::string n = pb::JobState_Name(s);
  const std::string prefix = "JOB_STATE_";
  return n.rfind(prefix, 0) == 0 ? n.substr(prefix.size()) : n;
}

pb::JobState ParseJobState(std::string_view name) {
  std::string up(name);
  std::transform(up.begin(), up.end(), up.begin(), [](unsigned char c) { return std::toupper(c); });
  if (up.rfind("JOB_STATE_", 0) != 0) up = "JOB_STATE_" + up;
  pb::JobState s;
  if (!pb::JobState_Parse(up, &s) || s == pb::JOB_STATE_UNSPECIFIED)
    throw Error("unknown job state '" + std::string(name) +
                "' (one of queued, launching, running, succeeded, failed, cancelled)");
  return s;
}

bool IsTerminal(pb::JobState s) {
  return s == pb::JOB_STATE_SUCCEEDED || s == pb::JOB_STATE_FAILED || s == pb::JOB_STATE_CANCELLED;
}

}  // namespace ps

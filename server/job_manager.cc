#include "server/job_manager.h"

#include <algorithm>
#include <stdexcept>

#include "proto/spec_convert.h"
#include "server/job_state.h"
#include "server/log.h"

namespace ps {

namespace pb = proxsparse::v1;
using grpc::StatusCode;

namespace {

constexpr size_t kListBytes = 4 << 20;  // a page stops growing here (the client limit is 64 MiB)

// What a watch event carries: the job as it is now, minus what only GetJob needs. The texts and
// the history are swapped out, not cleared: a cleared string or repeated field keeps its memory,
// and up to kActiveEvents of these are retained per job.
pb::Job EventJob(const pb::Job& job) {
  pb::Job j = job;
  std::string().swap(*j.mutable_original_yaml());
  std::string().swap(*j.mutable_spec_yaml());
  google::protobuf::RepeatedPtrField<pb::StateTransition> last;
  if (job.history_size() > 0) *last.Add() = job.history(job.history_size() - 1);
  j.mutable_history()->Swap(&last);
  return j;
}

}  // namespace

pb::Job JobSummary(const pb::Job& job) {
  pb::Job j;
  j.set_id(job.id());
  j.set_name(job.name());
  j.set_state(job.state());
  pb::JobSpec* s = j.mutable_spec();
  s->set_name(job.spec().name());
  s->set_model(job.spec().model());
  s->set_pattern(job.spec().pattern());
  s->mutable_method()->set_name(job.spec().method().name());
  *s->mutable_resources() = job.spec().resources();
  j.set_spec_hash(job.spec_hash());
  j.set_attempt(job.attempt());
  j.set_max_attempts(job.max_attempts());
  j.set_launcher(job.launcher());
  j.set_launcher_id(job.launcher_id());
  *j.mutable_create_time() = job.create_time();
  if (job.has_start_time()) *j.mutable_start_time() = job.start_time();
  if (job.has_end_time()) *j.mutable_end_time() = job.end_time();
  j.set_message(job.message());
  if (job.has_progress()) {
    *j.mutable_progress() = job.progress();
    j.mutable_progress()->clear_phase_seconds();
  }
  j.set_checkpoint_step(job.checkpoint_step());
  if (job.has_result()) *j.mutable_result() = job.result();  // what psctl list shows
  j.set_output_dir(job.output_dir());
  j.set_job_dir(job.job_dir());
  j.set_cancel_requested(job.cancel_requested());
  return j;
}

void JobManager::Load(const StoredJobs& stored) {
  std::lock_guard lock(mu_);
  auto now = clock_.SteadyNow();
  for (const auto& j : stored.jobs) {
    Entry& e = jobs_[j.id()];
    e.job = j;
    e.version = 1;
    e.rt.heartbeat = e.rt.launched = e.rt.last_persist = now;
  }
  for (const auto& c : stored.corrupt) {
    Entry& e = jobs_[c.id];
    e.job.set_id(c.id);
    e.job.set_state(pb::JOB_STATE_FAILED);
    e.job.set_message("psd cannot read this job's record in the store (" + c.reason +
                      "); it was marked FAILED and not run. Its files are kept; psctl delete " +
                      c.id + " removes it");
    *e.job.mutable_end_time() = clock_.WallNow();
    e.job.set_checkpoint_step(-1);
    e.version = 1;
    LogEvent(spdlog::level::err, "store.corrupt_row", {{"job_id", c.id}, {"reason", c.reason}});
  }
}

pb::Job JobManager::Add(pb::Job job) {
  store_.Put(job);
  std::lock_guard lock(mu_);
  Entry& e = jobs_[job.id()];
  e.job = std::move(job);
  e.rt.heartbeat = e.rt.launched = e.rt.last_persist = clock_.SteadyNow();
  Record(e, pb::WatchJobResponse::KIND_STATE);
  LogJobEvent(e.job, "job.submitted");
  return e.job;
}

pb::Job JobManager::Update(const std::string& id, const JobChange& change) {
  std::lock_guard write(write_mu_);
  std::unique_lock lock(mu_);
  Entry* e = &Find(id);
  pb::Job next = e->job;
  JobRuntime rt = e->rt;
  const uint64_t in_memory = e->in_memory;
  std::optional<Commit> c = change(next, rt);
  if (!c) return e->job;
  if (c->persist) {
    lock.unlock();  // a write may wait seconds on a locked database: reads and reports go on
    try {
      store_.Put(next);
    } catch (const StoreError& ex) {
      LogEvent(spdlog::level::err, "store.write_failed", {{"job_id", id}, {"error", ex.what()}});
      throw;
    }
    lock.lock();
    e = &Find(id);  // still there: Remove waits for write_mu_
    rt.last_persist = clock_.SteadyNow();
    rt.unsaved = false;
    if (e->in_memory != in_memory) KeepInMemoryChanges(*e, next, rt);
  }
  bool state_changed = next.state() != e->job.state();
  e->job = std::move(next);
  e->rt = rt;
  if (c->event != pb::WatchJobResponse::KIND_UNSPECIFIED) Record(*e, c->event);
  if (state_changed) LogJobEvent(e->job, "job.state");
  return e->job;
}

void JobManager::KeepInMemoryChanges(const Entry& now, pb::Job& next, JobRuntime& rt) {
  rt.heartbeat = std::max(rt.heartbeat, now.rt.heartbeat);
  if (Seconds(now.job.heartbeat_time()) > Seconds(next.heartbeat_time()))
    *next.mutable_heartbeat_time() = now.job.heartbeat_time();
  // Only in-memory updates set the progress: what they set meanwhile is newer than what was
  // written, and still to be written.
  if (now.job.progress().SerializeAsString() != next.progress().SerializeAsString()) {
    *next.mutable_progress() = now.job.progress();
    rt.unsaved = true;
  }
}

pb::Job JobManager::UpdateInMemory(const std::string& id, const JobChange& change) {
  std::lock_guard lock(mu_);
  Entry& e = Find(id);
  pb::Job next = e.job;
  JobRuntime rt = e.rt;
  std::optional<Commit> c = change(next, rt);
  if (!c) return e.job;
  if (c->persist || next.state() != e.job.state())
    throw std::logic_error("JobManager::UpdateInMemory: job " + id +
                           ": a change that must be stored goes through Update");
  e.job = std::move(next);
  e.rt = rt;
  ++e.in_memory;
  if (c->event != pb::WatchJobResponse::KIND_UNSPECIFIED) Record(e, c->event);
  return e.job;
}

pb::Job JobManager::Remove(const std::string& id) {
  std::lock_guard write(write_mu_);  // no Update runs until the record is gone
  {
    std::lock_guard lock(mu_);
    Entry& e = Find(id);
    if (!IsTerminal(e.job.state()))
      throw ApiError(StatusCode::FAILED_PRECONDITION,
                     "job " + id + " is " + JobStateName(e.job.state()) +
                         "; cancel it first (psctl cancel " + id + ")");
  }
  store_.Delete(id);  // outside the table lock, as Update writes
  std::lock_guard lock(mu_);
  auto it = jobs_.find(id);
  pb::Job out = std::move(it->second.job);
  jobs_.erase(it);
  changed_.notify_all();
  LogJobEvent(out, "job.deleted");
  return out;
}

void JobManager::Record(Entry& e, pb::WatchJobResponse::Kind kind) {
  ++e.version;
  pb::WatchJobResponse ev;
  ev.set_kind(kind);
  *ev.mutable_job() = EventJob(e.job);
  e.events.emplace_back(e.version, std::move(ev));
  size_t keep = IsTerminal(e.job.state()) ? kFinishedEvents : kActiveEvents;
  while (e.events.size() > keep) e.events.pop_front();
  changed_.notify_all();
}

JobManager::Entry& JobManager::Find(const std::string& id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end())
    throw ApiError(StatusCode::NOT_FOUND, "no job " + id + " (psctl list shows the jobs)");
  return it->second;
}

const JobManager::Entry& JobManager::Find(const std::string& id) const {
  return const_cast<JobManager*>(this)->Find(id);
}

pb::Job JobManager::Get(const std::string& id) const {
  std::lock_guard lock(mu_);
  return Find(id).job;
}

pb::ListJobsResponse JobManager::List(const pb::ListJobsRequest& req) const {
  int size = req.page_size() <= 0 ? 50 : std::min(req.page_size(), 1000);
  std::lock_guard lock(mu_);
  pb::ListJobsResponse resp;
  size_t bytes = 0;
  auto it = req.page_token().empty() ? jobs_.begin() : jobs_.upper_bound(req.page_token());
  for (; it != jobs_.end(); ++it) {
    const pb::Job& j = it->second.job;
    if (req.states_size() &&
        std::find(req.states().begin(), req.states().end(), j.state()) == req.states().end())
      continue;
    if (resp.jobs_size() == size || (resp.jobs_size() > 0 && bytes >= kListBytes)) {
      resp.set_next_page_token(resp.jobs(resp.jobs_size() - 1).id());
      break;
    }
    pb::Job* out = resp.add_jobs();
    if (req.full()) {
      *out = j;
      out->clear_history();
      out->clear_original_yaml();
    } else {
      *out = JobSummary(j);
    }
    bytes += out->ByteSizeLong();
  }
  return resp;
}

bool JobManager::Watch(const std::string& id, uint64_t& version,
                       std::vector<pb::WatchJobResponse>& out, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const Entry* e = &Find(id);
  if (version == 0) {
    pb::WatchJobResponse snap;
    snap.set_kind(pb::WatchJobResponse::KIND_SNAPSHOT);
    *snap.mutable_job() = e->job;
    out.push_back(std::move(snap));
    version = e->version;
    return true;
  }
  auto collect = [&] {
    for (const auto& [v, ev] : e->events)
      if (v > version) out.push_back(ev);
    if (!out.empty()) version = e->version;
    return !out.empty();
  };
  if (!collect() && !IsTerminal(e->job.state())) {
    changed_.wait_for(lock, timeout, [&] {
      return stopping_ || !jobs_.count(id) || jobs_.at(id).version > version;
    });
    e = &Find(id);  // NOT_FOUND once deleted
    collect();
  }
  return !(IsTerminal(e->job.state()) && version >= e->version && out.empty());
}

void JobManager::ForEach(const std::function<void(const pb::Job&, const JobRuntime&)>& f) const {
  std::lock_guard lock(mu_);
  for (const auto& [id, e] : jobs_) f(e.job, e.rt);
}

std::vector<std::string> JobManager::Ids(const std::function<bool(const pb::Job&)>& pred) const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [id, e] : jobs_)
    if (pred(e.job)) out.push_back(id);
  return out;
}

size_t JobManager::EventCount() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [id, e] : jobs_) n += e.events.size();
  return n;
}

void JobManager::WakeWatchers() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  changed_.notify_all();
}

}  // namespace ps

// The jobs: every job's record and watch events in memory, written through to the JobStore.
// Every change is made on a copy that is persisted first and installed only when the store took
// it, so a store error leaves memory and disk agreeing (and the caller sees UNAVAILABLE). The
// store is written outside the table lock (one write at a time, in order): a write that waits on
// the store (a locked database waits up to its busy timeout) holds up neither reads nor the
// in-memory updates of the workers' liveness and progress, which are written with the next write
// of the job. Watch events are bounded: a running job keeps its last kActiveEvents, a finished one
// kFinishedEvents, and an event carries the job without its job file texts.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "proxsparse/v1/job_service.pb.h"
#include "server/clock.h"
#include "server/job_store.h"

namespace ps {

// What psd knows of a job beyond its record: supervision times (not persisted).
struct JobRuntime {
  Clock::Steady heartbeat{};  // last sign of life
  Clock::Steady launched{};   // when the current attempt was launched (or left a queue)
  // When the record was last written, or a write of unsaved progress last failed: progress is
  // written at most every few seconds.
  Clock::Steady last_persist{};
  Clock::Steady not_before{};  // retry backoff: not launched before this
  bool pending_in_queue = false;
  bool unsaved = false;  // the record in memory has progress the store lacks
};

// A change to one job: mutates the copy and says what it was; nullopt = nothing changed.
struct Commit {
  proxsparse::v1::WatchJobResponse::Kind event = proxsparse::v1::WatchJobResponse::KIND_STATE;
  bool persist = true;
};
using JobChange = std::function<std::optional<Commit>(proxsparse::v1::Job&, JobRuntime&)>;

class JobManager {
 public:
  static constexpr size_t kActiveEvents = 256;
  static constexpr size_t kFinishedEvents = 16;

  JobManager(JobStore& store, const Clock& clock) : store_(store), clock_(clock) {}

  // Fills the table from the store; a corrupt row becomes a FAILED job (in memory only, so the
  // row stays for inspection until the job is deleted).
  void Load(const StoredJobs& stored);
  // Persists a new job and adds it; throws StoreError (nothing added) when the store refuses.
  proxsparse::v1::Job Add(proxsparse::v1::Job job);
  // Applies `change` to job `id` (NOT_FOUND when unknown): persisted first, then installed; a
  // throw from `change` or the store leaves the job as it was. Returns the job after the change.
  // Updates run one at a time; the store write happens outside the table lock.
  proxsparse::v1::Job Update(const std::string& id, const JobChange& change);
  // A change kept in memory only, never waiting on the store: a worker's liveness and progress
  // (the job's heartbeat_time and progress, JobRuntime; rt.unsaved marks progress the store
  // should get). It must not change the state nor ask to persist (logic_error). An Update whose
  // write is under way when it lands keeps its heartbeat, heartbeat_time, progress and unsaved;
  // other runtime fields come from that Update.
  proxsparse::v1::Job UpdateInMemory(const std::string& id, const JobChange& change);
  // Deletes a finished job's record (FAILED_PRECONDITION while it is not finished).
  proxsparse::v1::Job Remove(const std::string& id);

  proxsparse::v1::Job Get(const std::string& id) const;
  proxsparse::v1::ListJobsResponse List(const proxsparse::v1::ListJobsRequest& req) const;
  bool Watch(const std::string& id, uint64_t& version,
             std::vector<proxsparse::v1::WatchJobResponse>& out, std::chrono::milliseconds timeout);
  // Read-only visit of every job, oldest first, under the lock (keep `f` short).
  void ForEach(const std::function<void(const proxsparse::v1::Job&, const JobRuntime&)>& f) const;
  std::vector<std::string> Ids(const std::function<bool(const proxsparse::v1::Job&)>& pred) const;
  size_t EventCount() const;  // all jobs' retained watch events
  void WakeWatchers();        // on shutdown

 private:
  struct Entry {
    proxsparse::v1::Job job;
    JobRuntime rt;
    uint64_t version = 0;
    uint64_t in_memory = 0;  // UpdateInMemory calls so far
    std::deque<std::pair<uint64_t, proxsparse::v1::WatchJobResponse>> events;
  };
  Entry& Find(const std::string& id);
  const Entry& Find(const std::string& id) const;
  void Record(Entry& e, proxsparse::v1::WatchJobResponse::Kind kind);
  // Into `next`, which was stored while in-memory updates landed on `now`: their newer fields.
  static void KeepInMemoryChanges(const Entry& now, proxsparse::v1::Job& next, JobRuntime& rt);

  JobStore& store_;
  const Clock& clock_;
  std::mutex write_mu_;  // held by Update and Remove across their store write; before mu_
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Entry> jobs_;
  bool stopping_ = false;
};

// A list entry: the job without its job file texts, history and per-phase timings, and with only
// the spec's name, model, pattern, method name and resources.
proxsparse::v1::Job JobSummary(const proxsparse::v1::Job& job);

}  // namespace ps

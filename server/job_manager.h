// The jobs: every job's record and watch events in memory, written through to the JobStore.
// Every change is made on a copy that is persisted first and installed only when the store took
// it, so a store error leaves memory and disk agreeing (and the caller sees UNAVAILABLE). Watch
// events are bounded: a running job keeps its last kActiveEvents, a finished one kFinishedEvents,
// and an event carries the job without its job file texts.
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
  Clock::Steady heartbeat{};     // last sign of life
  Clock::Steady launched{};      // when the current attempt was launched (or left a queue)
  Clock::Steady last_persist{};  // progress is persisted at most every few seconds
  Clock::Steady not_before{};    // retry backoff: not launched before this
  bool pending_in_queue = false;
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
  proxsparse::v1::Job Update(const std::string& id, const JobChange& change);
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
    std::deque<std::pair<uint64_t, proxsparse::v1::WatchJobResponse>> events;
  };
  Entry& Find(const std::string& id);
  const Entry& Find(const std::string& id) const;
  void Record(Entry& e, proxsparse::v1::WatchJobResponse::Kind kind);

  JobStore& store_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::map<std::string, Entry> jobs_;
  bool stopping_ = false;
};

// A list entry: the job without its job file texts, history and per-phase timings, and with only
// the spec's name, model, pattern, method name and resources.
proxsparse::v1::Job JobSummary(const proxsparse::v1::Job& job);

}  // namespace ps

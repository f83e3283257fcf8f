#include <cstdio>

#include "server/job_store.h"

namespace ps {

namespace pb = proxsparse::v1;

void MemoryJobStore::Check() const {
  if (!fail_.empty()) throw StoreError(fail_);
}

std::string MemoryJobStore::NextId() {
  std::lock_guard lock(mu_);
  Check();
  char buf[32];
  std::snprintf(buf, sizeof buf, "j%06lld", static_cast<long long>(++next_));
  return buf;
}

void MemoryJobStore::WaitWhileHeld(std::unique_lock<std::mutex>& lock) {
  if (!held_) return;
  ++waiting_;
  released_.wait(lock, [&] { return !held_; });
  --waiting_;
  if (!held_fail_.empty()) throw StoreError(held_fail_);
}

void MemoryJobStore::Put(const pb::Job& job) {
  std::unique_lock lock(mu_);
  WaitWhileHeld(lock);
  Check();
  ++writes_;
  corrupt_.erase(job.id());
  jobs_[job.id()] = job;
}

void MemoryJobStore::Delete(const std::string& id) {
  std::unique_lock lock(mu_);
  WaitWhileHeld(lock);
  Check();
  ++writes_;
  jobs_.erase(id);
  corrupt_.erase(id);
}

StoredJobs MemoryJobStore::LoadAll() {
  std::lock_guard lock(mu_);
  Check();
  StoredJobs out;
  for (const auto& [id, j] : jobs_) out.jobs.push_back(j);  // ids sort by age
  for (const auto& [id, why] : corrupt_) out.corrupt.push_back({id, why});
  return out;
}

void MemoryJobStore::FailWith(const std::string& why) {
  std::lock_guard lock(mu_);
  fail_ = why;
}

void MemoryJobStore::PutCorrupt(const std::string& id, const std::string& reason) {
  std::lock_guard lock(mu_);
  jobs_.erase(id);
  corrupt_[id] = reason;
}

void MemoryJobStore::HoldWrites() {
  std::lock_guard lock(mu_);
  held_ = true;
}

void MemoryJobStore::ReleaseWrites(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    held_ = false;
    held_fail_ = why;
  }
  released_.notify_all();
}

int MemoryJobStore::waiting() const {
  std::lock_guard lock(mu_);
  return waiting_;
}

int MemoryJobStore::writes() const {
  std::lock_guard lock(mu_);
  return writes_;
}

}  // namespace ps

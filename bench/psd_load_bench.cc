// Load and memory bench of a running psd (not a test): fills it with finished jobs and reports
// its resident memory, then drives concurrent readers (list / get / watch) and writers
// (submit + cancel) and reports errors and latency percentiles.
//   psd_load_bench --server 127.0.0.1:PORT --pid PSD_PID --job JOB.yaml
//                  [--fill 1000] [--readers 200] [--writers 50] [--rounds 3]
// bench/psd_load.sh starts a psd with the fake worker and runs this.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "bench/bench_timer.h"
#include "client/channel.h"
#include "common/file_util.h"
#include "proxsparse/v1/job_service.grpc.pb.h"

namespace pb = proxsparse::v1;
namespace fs = std::filesystem;

namespace {

double RssMiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return -1;
}

struct Stats {
  std::mutex mu;
  std::vector<double> ms;
  std::atomic<int> errors{0};
  std::vector<std::string> samples;
  void Add(double v) {
    std::lock_guard lock(mu);
    ms.push_back(v);
  }
  void Error(const grpc::Status& st, const char* what) {
    ++errors;
    std::lock_guard lock(mu);
    if (samples.size() < 5) samples.push_back(std::string(what) + ": " + st.error_message());
  }
};

std::unique_ptr<grpc::ClientContext> Ctx(double s = 30) {
  return ps::MakeContext("", std::chrono::milliseconds(static_cast<int>(s * 1000)));
}

pb::SubmitJobRequest SubmitRequest(const fs::path& job) {
  pb::SubmitJobRequest req;
  req.set_yaml(ps::ReadFile(job));
  req.set_base_dir(fs::absolute(job).parent_path().string());
  return req;
}

int CountUnfinished(pb::JobService::Stub& stub) {
  pb::ListJobsRequest req;
  for (auto s : {pb::JOB_STATE_QUEUED, pb::JOB_STATE_LAUNCHING, pb::JOB_STATE_RUNNING})
    req.add_states(s);
  req.set_page_size(1000);
  int n = 0;
  pb::ListJobsResponse resp;
  do {
    req.set_page_token(resp.next_page_token());
    auto ctx = Ctx();
    if (!stub.ListJobs(ctx.get(), req, &resp).ok()) return -1;
    n += resp.jobs_size();
  } while (!resp.next_page_token().empty());
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server, job;
  int pid = 0, fill = 1000, readers = 200, writers = 50, rounds = 3;
  CLI::App app{"psd load and memory bench"};
  app.add_option("--server", server)->required();
  app.add_option("--pid", pid, "psd's pid (for its RSS)")->required();
  app.add_option("--job", job, "a quick job file (fake worker)")->required();
  app.add_option("--fill", fill, "finished jobs before the memory reading");
  app.add_option("--readers", readers);
  app.add_option("--writers", writers);
  app.add_option("--rounds", rounds, "calls per reader");
  CLI11_PARSE(app, argc, argv);

  ps::ConnectionOptions co;
  co.address = server;
  auto channel = ps::MakeChannel(co);
  auto stub = pb::JobService::NewStub(channel);
  std::printf("psd RSS at start: %.1f MiB\n", RssMiB(pid));

  // 1. Fill: `fill` jobs run to the end.
  const ps::bench::Stopwatch fill_clock;
  pb::SubmitJobRequest sreq = SubmitRequest(job);
  std::vector<std::string> ids;
  for (int i = 0; i < fill; ++i) {
    pb::Job out;
    auto ctx = Ctx();
    grpc::Status st = stub->SubmitJob(ctx.get(), sreq, &out);
    if (!st.ok()) {
      std::fprintf(stderr, "submit %d: %s\n", i, st.error_message().c_str());
      return 1;
    }
    ids.push_back(out.id());
    if ((i + 1) % 100 == 0) std::fprintf(stderr, "submitted %d/%d\n", i + 1, fill);
  }
  for (int left; (left = CountUnfinished(*stub)) != 0;) {
    if (left < 0) return 1;
    std::fprintf(stderr, "%d jobs unfinished\n", left);
    std::this_thread::sleep_for(std::chrono::seconds(5));
  }
  double fill_s = fill_clock.Seconds();
  std::printf("%d jobs finished in %.0f s; psd RSS %.1f MiB\n", fill, fill_s, RssMiB(pid));

  // 2. Load: readers and writers at once.
  Stats reads, writes;
  std::atomic<int> calls{0};
  std::vector<std::thread> threads;
  const ps::bench::Stopwatch load_clock;
  for (int r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      for (int k = 0; k < rounds; ++k) {
        const ps::bench::Stopwatch s;
        auto ctx = Ctx();
        grpc::Status st;
        const std::string& id = ids[static_cast<size_t>(r * 7 + k) % ids.size()];
        switch ((r + k) % 3) {
          case 0: {
            pb::ListJobsRequest req;
            req.set_page_size(100);
            pb::ListJobsResponse resp;
            st = stub->ListJobs(ctx.get(), req, &resp);
            break;
          }
          case 1: {
            pb::GetJobRequest req;
            req.set_id(id);
            pb::Job resp;
            st = stub->GetJob(ctx.get(), req, &resp);
            break;
          }
          default: {  // a finished job: snapshot and end of stream
            pb::WatchJobRequest req;
            req.set_id(id);
            auto reader = stub->WatchJob(ctx.get(), req);
            pb::WatchJobResponse ev;
            while (reader->Read(&ev)) {
            }
            st = reader->Finish();
          }
        }
        ++calls;
        if (!st.ok()) reads.Error(st, "read");
        reads.Add(s.Ms());
      }
    });
  }
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&] {
      const ps::bench::Stopwatch s;
      pb::Job job_out, cancelled;
      auto ctx = Ctx();
      grpc::Status st = stub->SubmitJob(ctx.get(), sreq, &job_out);
      if (st.ok()) {
        pb::CancelJobRequest c;
        c.set_id(job_out.id());
        auto ctx2 = Ctx();
        st = stub->CancelJob(ctx2.get(), c, &cancelled);
        if (st.ok() && cancelled.state() != pb::JOB_STATE_CANCELLED &&
            cancelled.state() != pb::JOB_STATE_SUCCEEDED)
          st = grpc::Status(grpc::StatusCode::INTERNAL, "cancel left " + cancelled.id() + " " +
                                                            std::to_string(cancelled.state()));
      }
      calls += 2;
      if (!st.ok()) writes.Error(st, "submit+cancel");
      writes.Add(s.Ms());
    });
  }
  for (auto& t : threads) t.join();
  double load_s = load_clock.Seconds();
  auto pct = [](std::vector<double> v, double p) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf(
      "load: %d readers x %d calls (list/get/watch) + %d submit+cancel, %d calls in %.1f s: "
      "%d errors\n",
      readers, rounds, writers, calls.load(), load_s, reads.errors + writes.errors);
  std::printf("  reads  p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", pct(reads.ms, 0.5),
              pct(reads.ms, 0.99), pct(reads.ms, 1.0));
  std::printf("  writes p50 %.1f ms  p99 %.1f ms  max %.1f ms\n", pct(writes.ms, 0.5),
              pct(writes.ms, 0.99), pct(writes.ms, 1.0));
  for (const auto& s : reads.samples) std::printf("  error: %s\n", s.c_str());
  for (const auto& s : writes.samples) std::printf("  error: %s\n", s.c_str());
  std::printf("psd RSS after the load: %.1f MiB\n", RssMiB(pid));
  return reads.errors + writes.errors == 0 ? 0 : 1;
}

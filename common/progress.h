// What a running job tells the outside world. The worker engine calls a ProgressSink and never
// knows where the events go: to the terminal (psworker --local), to a JSON-lines file, or to the
// coordinator over gRPC (client/worker_reporter.h). Torch-free.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace ps {

// One progress report. Fields a method does not have stay at their "unknown" value (NaN for
// reals, -1 for counts) and are left out of displays and metrics.
struct ProgressEvent {
  static constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();
  int64_t step = 0;         // optimizer steps done (or layers done for one-shot methods)
  int64_t total_steps = 0;  // planned; 0 = unknown
  std::string stage;        // e.g. "train", "calibrate", "evaluate", "layer 3/12"
  std::string unit;         // what step counts ("windows" while evaluating); empty: "step"
  double loss = kUnknown;
  double nm_ratio = kUnknown;       // fraction of target groups already N:M sparse
  double mid_ratio = kUnknown;      // fraction with N+1 non-zeros (3 of 4 for 2:4)
  double dense_ratio = kUnknown;    // fraction with more non-zeros than that
  int64_t mask_flips = -1;          // top-N mask changes since the previous report
  int64_t prox_capped_groups = -1;  // prox groups stopped at the iteration cap so far (-1: no prox)
  double lr = kUnknown;
  double tokens_per_s = kUnknown;  // all ranks together
  double eta_s = kUnknown;
  std::map<std::string, double> phase_seconds;  // forward_backward, communication, optimizer, prox
  int rank = 0;
  int64_t gpu_mem_bytes = -1;
  double gpu_util = kUnknown;  // 0..1
};

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  virtual void Progress(const ProgressEvent& event) = 0;
  virtual void Log(std::string_view line) = 0;
  // A complete checkpoint for `step` now sits in `dir` (a resume can start from it).
  virtual void Checkpoint(int64_t step, const std::filesystem::path& dir) = 0;
  // The job's end: ok or not, why, and where its outputs are.
  virtual void Result(bool ok, std::string_view message,
                      const std::filesystem::path& output_dir) = 0;
  // True once someone asked the job to stop; the engine checks it between steps.
  virtual bool CancelRequested() { return false; }
};

// Discards everything: for programs (benches) that print their own summary.
class NullProgressSink : public ProgressSink {
 public:
  void Progress(const ProgressEvent&) override {}
  void Log(std::string_view) override {}
  void Checkpoint(int64_t, const std::filesystem::path&) override {}
  void Result(bool, std::string_view, const std::filesystem::path&) override {}
};

// One line like "step 120/400 [=====>    ] 30% loss 2.314 2:4 61.2% tok/s 1.8k ETA 3m12s".
// `width` is the bar's width in characters (0: no bar). `pattern` labels the N:M ratio.
std::string FormatProgressLine(const ProgressEvent& e, int width = 24,
                               std::string_view pattern = "2:4");
// "3m12s", "1h04m", "45s"; "?" for unknown.
std::string FormatDuration(double seconds);

// Terminal display: redraws one line on a TTY, prints a line per event otherwise; logs and
// results go on their own lines.
class StderrProgressSink : public ProgressSink {
 public:
  explicit StderrProgressSink(std::FILE* out = stderr, std::string pattern = "2:4");
  void Progress(const ProgressEvent& event) override;
  void Log(std::string_view line) override;
  void Checkpoint(int64_t step, const std::filesystem::path& dir) override;
  void Result(bool ok, std::string_view message, const std::filesystem::path& output_dir) override;

 private:
  void EndBar();
  std::mutex mu_;
  std::FILE* out_;
  std::string pattern_;
  bool tty_;
  bool bar_open_ = false;
};

// Appends one JSON object per call to a file ({"type":"progress",...}, "log", "checkpoint",
// "result"), flushed each time so that a reader can follow it.
class JsonLinesProgressSink : public ProgressSink {
 public:
  explicit JsonLinesProgressSink(const std::filesystem::path& path);
  ~JsonLinesProgressSink() override;
  void Progress(const ProgressEvent& event) override;
  void Log(std::string_view line) override;
  void Checkpoint(int64_t step, const std::filesystem::path& dir) override;
  void Result(bool ok, std::string_view message, const std::filesystem::path& output_dir) override;

 private:
  void Write(const std::string& line);
  std::mutex mu_;
  std::FILE* f_;
};

// Sends every call to each of several sinks; cancelled when any of them is.
class TeeProgressSink : public ProgressSink {
 public:
  explicit TeeProgressSink(std::vector<ProgressSink*> sinks) : sinks_(std::move(sinks)) {}
  void Progress(const ProgressEvent& e) override;
  void Log(std::string_view line) override;
  void Checkpoint(int64_t step, const std::filesystem::path& dir) override;
  void Result(bool ok, std::string_view message, const std::filesystem::path& output_dir) override;
  bool CancelRequested() override;

 private:
  std::vector<ProgressSink*> sinks_;
};

// JSON form of an event (unknown fields left out) and back; used by the JSON-lines sink, psctl
// -o json and tests.
std::string ProgressEventToJson(const ProgressEvent& e);
ProgressEvent ProgressEventFromJson(std::string_view json);

}  // namespace ps

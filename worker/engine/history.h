// The per-step history of a training run: a CSV file (one row per logged step, flushed as it goes
// so that a crash loses nothing already logged) and a plot of it like the ProxSparse paper's
// Figure 1 (fractions of N:M-sparse / N+1-sparse / dense groups over steps, and the loss), drawn
// by gnuplot.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace ps {

struct HistoryRow {
  int64_t step = 0;
  double loss = 0;
  double lr = 0;
  double nm_ratio = 0;
  double mid_ratio = 0;
  double dense_ratio = 0;
  int64_t mask_flips = 0;
  double tokens_per_s = 0;
  double seconds = 0;  // wall time since the start of training
};

class HistoryWriter {
 public:
  // Appends when `append` (a resumed run) and the file exists, else starts a new file.
  HistoryWriter(const std::filesystem::path& csv, bool append);
  ~HistoryWriter();
  HistoryWriter(const HistoryWriter&) = delete;
  HistoryWriter& operator=(const HistoryWriter&) = delete;
  void Add(const HistoryRow& row);
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::FILE* f_ = nullptr;
};

// The CSV header line (without newline).
const char* HistoryCsvHeader();

// Draws `csv` into `png` with gnuplot. `pattern` labels the curves ("2:4"). Throws ps::Error with
// gnuplot's complaint when gnuplot is missing or fails.
void PlotHistory(const std::filesystem::path& csv, const std::filesystem::path& png,
                 const std::string& pattern, const std::string& title);

}  // namespace ps

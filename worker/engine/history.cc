#include "worker/engine/history.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "common/error.h"
#include "common/file_util.h"

namespace ps {

const char* HistoryCsvHeader() {
  return "step,loss,lr,nm_ratio,mid_ratio,dense_ratio,mask_flips,tokens_per_s,seconds";
}

HistoryWriter::HistoryWriter(const std::filesystem::path& csv, bool append) : path_(csv) {
  bool exists = std::filesystem::exists(csv);
  f_ = std::fopen(csv.c_str(), append && exists ? "a" : "w");
  if (!f_) throw Error("cannot write " + csv.string() + ": " + std::strerror(errno));
  if (!(append && exists)) std::fprintf(f_, "%s\n", HistoryCsvHeader());
  std::fflush(f_);
}

HistoryWriter::~HistoryWriter() {
  if (f_) std::fclose(f_);
}

void HistoryWriter::Add(const HistoryRow& r) {
  std::fprintf(f_, "%lld,%.6g,%.6g,%.6f,%.6f,%.6f,%lld,%.6g,%.3f\n", static_cast<long long>(r.step),
               r.loss, r.lr, r.nm_ratio, r.mid_ratio, r.dense_ratio,
               static_cast<long long>(r.mask_flips), r.tokens_per_s, r.seconds);
  std::fflush(f_);
}

namespace {

// gnuplot string literal: single quotes, with embedded quotes doubled.
std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "''";
    else
      out += c;
  }
  return out + "'";
}

// POSIX shell word: single quotes, embedded quotes as '\''.
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

}  // namespace

void PlotHistory(const std::filesystem::path& csv, const std::filesystem::path& png,
                 const std::string& pattern, const std::string& title) {
  int n = std::stoi(pattern.substr(0, pattern.find(':')));
  const std::string data = Quote(csv.string());
  std::ostringstream g;
  // Three panels on one step axis (same margins and x range, tick labels only at the bottom):
  // group fractions with the mask flips on the right axis; the loss raw (faint) and smoothed
  // (exponential moving average, weight 0.1); the learning rate.
  g << "set terminal pngcairo size 1000,900 font 'sans,10'\n"
    << "set output " << Quote(png.string()) << "\n"
    << "set datafile separator ','\n"
    << "stats " << data << " using 1 nooutput\n"
    << "if (STATS_min == STATS_max) { set xrange [STATS_min - 1:STATS_max + 1] } "
       "else { set xrange [STATS_min:STATS_max] }\n"
    << "set multiplot title " << Quote(title) << "\n"
    << "set lmargin at screen 0.09\nset rmargin at screen 0.80\n"
    << "set grid\nset key outside right top\nunset xlabel\nset format x ''\n"
    << "set tmargin at screen 0.93\nset bmargin at screen 0.66\n"
    << "set ylabel 'fraction of groups'\nset yrange [0:1]\n"
    << "set y2label 'mask flips'\nset y2tics\nset autoscale y2\n"
    << "plot " << data << " using 1:4 with lines lw 2 title " << Quote(pattern + " sparse")
    << ", '' using 1:5 with lines lw 2 title " << Quote(std::to_string(n + 1) + "-sparse")
    << ", '' using 1:6 with lines lw 2 title 'dense'"
    << ", '' using 1:($7 >= 0 ? $7 : NaN) axes x1y2 with impulses lc rgb '#A0A0A0' "
       "title 'mask flips'\n"
    << "unset y2tics\nunset y2label\n"
    << "set tmargin at screen 0.63\nset bmargin at screen 0.36\n"
    << "set ylabel 'loss'\nset autoscale y\nema = NaN\n"
    << "plot " << data << " using 1:2 with lines lw 1 lc rgb '#C8C8C8' title 'loss (raw)'"
    << ", '' using 1:(ema = (ema != ema) ? $2 : 0.1 * $2 + 0.9 * ema, ema) with lines lw 2 "
       "lc rgb '#1f77b4' title 'loss (EMA 0.1)'\n"
    << "set tmargin at screen 0.33\nset bmargin at screen 0.08\n"
    << "set format x '%g'\nset xlabel 'step'\nset ylabel 'learning rate'\nset format y '%.0e'\n"
    << "plot " << data << " using 1:3 with lines lw 2 lc rgb '#2ca02c' title 'lr'\n"
    << "unset multiplot\n";
  auto script = png;
  script += ".gp";
  WriteFileAtomic(script, g.str());
  std::string cmd = "gnuplot " + ShellQuote(script.string()) + " 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw Error("cannot run gnuplot: " + std::string(std::strerror(errno)));
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int rc = ::pclose(p);
  std::filesystem::remove(script);
  if (rc != 0 || !std::filesystem::exists(png))
    throw Error("gnuplot failed to draw " + png.string() + ": " +
                (out.empty() ? "not installed?" : out));
}

}  // namespace ps

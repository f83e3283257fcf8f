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
  std::ostringstream g;
  g << "set terminal pngcairo size 1000,700 font 'sans,10'\n"
    << "set output " << Quote(png.string()) << "\n"
    << "set datafile separator ','\n"
    << "set key autotitle columnhead outside right\n"
    << "set multiplot layout 2,1 title " << Quote(title) << "\n"
    << "set ylabel 'fraction of groups'\nset yrange [0:1]\nset grid\n"
    << "plot " << Quote(csv.string()) << " using 1:4 with lines lw 2 title "
    << Quote(pattern + " sparse") << ", '' using 1:5 with lines lw 2 title "
    << Quote(std::to_string(n + 1) + "-sparse") << ", '' using 1:6 with lines lw 2 title 'dense'\n"
    << "set ylabel 'loss'\nset xlabel 'step'\nset autoscale y\n"
    << "plot " << Quote(csv.string()) << " using 1:2 with lines lw 1 title 'loss'\n"
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

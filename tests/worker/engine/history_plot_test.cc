// The history plot: drawn from one row (an empty x range would make gnuplot fail) and from a run
// with unknown mask flips (-1), as a PNG.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "common/file_util.h"
#include "worker/engine/history.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

TEST(HistoryPlot, DrawsOneRowAndUnknownFlips) {
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) GTEST_SKIP() << "no gnuplot";
  const fs::path dir =
      fs::temp_directory_path() / ("ps_history_plot_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    HistoryWriter w(dir / "one.csv", false);
    w.Add({1, 2.5, 1e-4, 0.5, 0.25, 0.25, 7, 1000, 0.5});
  }
  PlotHistory(dir / "one.csv", dir / "one.png", "2:4", "ProxSparse 2:4, λ1 = 4");
  EXPECT_GT(fs::file_size(dir / "one.png"), 1000u);
  {
    HistoryWriter w(dir / "many.csv", false);
    for (int s = 1; s <= 50; ++s)
      w.Add({s, 3 * std::exp(-s / 20.0) + 1, 1e-4 * (1 - s / 50.0), s / 50.0, 0, 1 - s / 50.0, -1,
             1000, s * 0.1});
  }
  PlotHistory(dir / "many.csv", dir / "many.png", "2:4", "t");
  EXPECT_GT(fs::file_size(dir / "many.png"), 1000u);
  EXPECT_FALSE(fs::exists(dir / "many.png.gp"));  // the script is removed
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ps

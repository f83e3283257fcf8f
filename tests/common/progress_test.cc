#include "common/progress.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/file_util.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

ProgressEvent Sample() {
  ProgressEvent e;
  e.step = 120;
  e.total_steps = 400;
  e.loss = 2.31412;
  e.nm_ratio = 0.612;
  e.mid_ratio = 0.2;
  e.dense_ratio = 0.188;
  e.mask_flips = 17;
  e.prox_capped_groups = 0;
  e.lr = 5e-5;
  e.tokens_per_s = 1834;
  e.eta_s = 192;
  e.phase_seconds = {{"prox", 0.01}, {"forward_backward", 0.5}};
  e.gpu_mem_bytes = 1 << 30;
  e.gpu_util = 0.75;
  return e;
}

TEST(Progress, LineShowsWhatIsKnown) {
  std::string line = FormatProgressLine(Sample(), 10, "2:4");
  EXPECT_EQ(line,
            "step 120/400 [===>      ] 30% loss 2.3141 2:4 61.2% flips 17 tok/s 1.8k ETA 3m12s");
  ProgressEvent capped = Sample();
  capped.prox_capped_groups = 5;  // only a non-zero count is worth a user's attention
  EXPECT_NE(FormatProgressLine(capped, 10, "2:4").find(" prox-capped 5 "), std::string::npos);
  ProgressEvent bare;
  bare.step = 3;
  EXPECT_EQ(FormatProgressLine(bare), "step 3");
}

TEST(Progress, Durations) {
  EXPECT_EQ(FormatDuration(45), "45s");
  EXPECT_EQ(FormatDuration(3845), "1h04m");
  EXPECT_EQ(FormatDuration(ProgressEvent::kUnknown), "?");
}

TEST(Progress, JsonRoundTripKeepsUnknownsUnknown) {
  ProgressEvent a = Sample();
  ProgressEvent b = ProgressEventFromJson(ProgressEventToJson(a));
  EXPECT_EQ(b.step, a.step);
  EXPECT_DOUBLE_EQ(b.loss, a.loss);
  EXPECT_EQ(b.mask_flips, 17);
  EXPECT_EQ(b.prox_capped_groups, 0);
  EXPECT_EQ(b.phase_seconds, a.phase_seconds);
  EXPECT_EQ(b.gpu_mem_bytes, a.gpu_mem_bytes);
  ProgressEvent bare;
  ProgressEvent c = ProgressEventFromJson(ProgressEventToJson(bare));
  EXPECT_TRUE(std::isnan(c.loss));
  EXPECT_EQ(c.mask_flips, -1);
  EXPECT_EQ(c.prox_capped_groups, -1);
  EXPECT_EQ(nlohmann::json::parse(ProgressEventToJson(bare)).count("loss"), 0u);
  EXPECT_THROW(ProgressEventFromJson("{bad"), Error);
}

TEST(Progress, JsonLinesSinkWritesOneObjectPerCall) {
  fs::path p = fs::temp_directory_path() / ("ps_progress_" + std::to_string(::getpid()) + ".jsonl");
  {
    JsonLinesProgressSink sink(p);
    StderrProgressSink quiet(stderr);
    TeeProgressSink tee({&sink, &quiet});
    tee.Progress(Sample());
    tee.Log("hello \"world\"");
    tee.Checkpoint(50, "/tmp/ckpt");
    tee.Result(true, "finished", "/tmp/out");
    EXPECT_FALSE(tee.CancelRequested());
  }
  std::ifstream in(p);
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  fs::remove(p);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0]["type"], "progress");
  EXPECT_EQ(lines[0]["step"], 120);
  EXPECT_EQ(lines[1]["line"], "hello \"world\"");
  EXPECT_EQ(lines[2]["step"], 50);
  EXPECT_EQ(lines[3]["ok"], true);
  EXPECT_EQ(lines[3]["output_dir"], "/tmp/out");
}

TEST(Progress, JsonLinesSinkReportsUnwritablePath) {
  EXPECT_THROW(JsonLinesProgressSink("/nonexistent/dir/x.jsonl"), Error);
}

}  // namespace
}  // namespace ps

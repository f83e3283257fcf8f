// The result summary read from report.json, the shortest-form floats of the canonical job YAML,
// and `--set` on a YAML document.
#include "common/result_summary.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/job_spec.h"
#include "common/yaml_overrides.h"

namespace ps {
namespace {

using json = nlohmann::json;

json Report() {
  return json::parse(R"({
    "method": "proxsparse", "pattern": "2:4", "wall_seconds": 92.4,
    "checkpoints_removed": true,
    "dense": {"code-eval.txt": {"perplexity": 4.76}, "b.txt": {"perplexity": 10.0}},
    "pruned": {"code-eval.txt": {"perplexity": 7.9}, "b.txt": {"perplexity": 9.0}},
    "baselines": {"magnitude": {"code-eval.txt": {"perplexity": 12.5}},
                  "wanda": {"code-eval.txt": {"perplexity": 9.25}}},
    "validity": {"valid": true, "layers": [
      {"groups": 300, "nm_sparse_fraction": 1.0}, {"groups": 100, "nm_sparse_fraction": 0.5}]}
  })");
}

TEST(ResultSummary, ReadsTheReport) {
  ResultSummary s = SummarizeReport(Report());
  EXPECT_EQ(s.method, "proxsparse");
  ASSERT_EQ(s.texts.size(), 2u);
  EXPECT_EQ(s.texts[0].text, "b.txt");  // key order
  EXPECT_EQ(s.texts[1].text, "code-eval.txt");
  EXPECT_DOUBLE_EQ(*s.texts[1].dense, 4.76);
  EXPECT_DOUBLE_EQ(*s.texts[1].pruned, 7.9);
  EXPECT_DOUBLE_EQ(s.texts[1].baselines.at("wanda"), 9.25);
  EXPECT_TRUE(s.texts[0].baselines.empty());
  // Weighted by groups: (300 * 1 + 100 * 0.5) / 400, the published model's, not a training step's.
  EXPECT_DOUBLE_EQ(*s.nm_fraction, 0.875);
  EXPECT_TRUE(s.valid);
  EXPECT_TRUE(s.checkpoints_removed);
  EXPECT_DOUBLE_EQ(*s.wall_seconds, 92.4);
}

TEST(ResultSummary, FormatsLinesAndCells) {
  ResultSummary s = SummarizeReport(Report());
  auto lines = FormatResultLines(s);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "b.txt: dense 10.00 -> pruned 9.00 (-10.0%)");
  EXPECT_EQ(lines[1],
            "code-eval.txt: dense 4.76 -> pruned 7.90 (+66.0%), magnitude 12.50, wanda 9.25");
  EXPECT_EQ(lines[2], "published: 87.5% of target groups 2:4 (valid); took 1m32s");
  EXPECT_EQ(FormatResultCell(s), "10.00->9.00 (-10.0%)");
}

TEST(ResultSummary, MaskedUpdateIsWhatIsPublished) {
  json r = Report();
  r["masked_update"] = {{"eval", {{"code-eval.txt", {{"perplexity", 5.0}}}}}};
  r["validity"]["valid"] = false;
  ResultSummary s = SummarizeReport(r);
  EXPECT_NEAR(*s.texts[1].Change(), 5.0 / 4.76 - 1, 1e-12);
  auto lines = FormatResultLines(s);
  EXPECT_NE(lines[1].find("-> masked update 5.00 (+5.0%)"), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("NOT valid"), std::string::npos) << lines[2];
}

// report["final"] names the published stage: with reconstruction the summary must show the
// reconstructed model's perplexity, not the mask on the original weights.
TEST(ResultSummary, ReconstructedModelIsWhatIsPublished) {
  json r = Report();
  r["reconstruction"] = {{"eval", {{"code-eval.txt", {{"perplexity", 6.5}}}}}};
  r["final"] = {{"stage", "reconstruction"},
                {"kept_weights", "changed"},
                {"eval", r["reconstruction"]["eval"]}};
  ResultSummary s = SummarizeReport(r);
  EXPECT_EQ(s.published_label, "reconstructed");
  EXPECT_NEAR(*s.texts[1].Change(), 6.5 / 4.76 - 1, 1e-12);
  auto lines = FormatResultLines(s);
  EXPECT_NE(lines[1].find("-> reconstructed 6.50"), std::string::npos) << lines[1];
  EXPECT_EQ(FormatResultCell(s).substr(0, 10), "10.00->9.0");  // b.txt has no reconstruction
}

TEST(ResultSummary, MissingFieldsStayUnknown) {
  ResultSummary s = SummarizeReport(json::parse(R"({"method": "magnitude"})"));
  EXPECT_TRUE(s.texts.empty());
  EXPECT_FALSE(s.nm_fraction);
  EXPECT_EQ(FormatResultCell(s), "-");
  EXPECT_EQ(FormatResultLines(s).back(), "published: mask fraction unknown");
  // A text with no pruned figure (the job failed between the evaluations).
  s = SummarizeReport(json::parse(R"({"dense": {"a": {"perplexity": 3}}})"));
  EXPECT_EQ(FormatResultLines(s)[0], "a: dense 3.00 -> pruned ?");
  EXPECT_EQ(FormatPerplexity(std::nan("")), "nan");
  EXPECT_EQ(FormatPerplexity(INFINITY), "inf");
  EXPECT_FALSE(SummarizeReportIn("/nonexistent/dir"));
}

TEST(ResultSummary, ShortestNumbers) {
  EXPECT_EQ(FormatShortest(0.1), "0.1");
  EXPECT_EQ(FormatShortest(4.0), "4");
  EXPECT_EQ(FormatShortest(1e-5), "1e-05");
  EXPECT_EQ(FormatShortest(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(FormatShortest(-2.5), "-2.5");
}

// Canonical job YAML prints floats in the fewest digits that read back exactly.
TEST(CanonicalYaml, ShortestRoundTripFloats) {
  JobSpec s = ParseJobSpec(
      "model: m\ncalibration: {path: c.txt}\n"
      "method: {name: proxsparse, lambda1: 0.1, lr: 1.0e-4, epsilon: 0.3}\n"
      "resources: {memory_gb: 2.5}\n",
      "/base", "test");
  std::string y = JobSpecToYaml(s);
  EXPECT_NE(y.find("lambda1: 0.1\n"), std::string::npos) << y;
  EXPECT_NE(y.find("epsilon: 0.3\n"), std::string::npos) << y;
  EXPECT_NE(y.find("lr: 0.0001\n"), std::string::npos) << y;
  EXPECT_NE(y.find("memory_gb: 2.5\n"), std::string::npos) << y;
  EXPECT_EQ(y.find("0000000000"), std::string::npos) << y;
  // Values that need all 17 digits keep them, and everything reads back equal.
  s.method.lambda1 = 0.1 + 0.2;
  s.method.lambda2 = 1.0 / 3.0;
  JobSpec back = ParseJobSpec(JobSpecToYaml(s), "/base", "test");
  EXPECT_EQ(back.method.lambda1, 0.1 + 0.2);
  EXPECT_EQ(back.method.lambda2, 1.0 / 3.0);
  EXPECT_EQ(JobSpecToYaml(back), JobSpecToYaml(s));
}

TEST(YamlOverrides, SetsDottedKeys) {
  std::string y = ApplyYamlOverrides("name: a\nmethod: {name: proxsparse}\n",
                                     {"method.lambda1=2", "resources.ranks=4", "name=b"}, "f");
  JobSpec s = ParseJobSpec("model: m\ncalibration: {path: c.txt}\n" + y, "/base", "test");
  EXPECT_EQ(s.method.lambda1, 2.0);
  EXPECT_EQ(s.resources.ranks, 4);
  EXPECT_EQ(s.name, "b");
  EXPECT_THROW(ApplyYamlOverrides("a: 1\n", {"novalue"}, "f"), Error);
  EXPECT_THROW(ApplyYamlOverrides("a: 1\n", {"a..b=1"}, "f"), Error);
  EXPECT_THROW(ApplyYamlOverrides("- 1\n", {"a=1"}, "f"), Error);
}

}  // namespace
}  // namespace ps

// What a finished job achieved, read from its report.json: dense -> pruned perplexity per
// evaluation text (and the baselines and masked-update figures when the job computed them), the
// N:M fraction of the published model, validity and wall time. psworker prints it at the end of a
// job, the reporter carries it to psd, psctl shows it. Torch-free.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ps {

struct TextResultSummary {
  std::string text;  // evaluation file name
  // pruned: the mask on the original weights; published: the published model when its weights
  // changed after the mask was chosen (reconstruction and/or masked update; report["final"]).
  std::optional<double> dense, pruned, published;
  std::map<std::string, double> baselines;  // method -> perplexity
  // (after / dense - 1) where after is the published figure when there is one, else pruned.
  std::optional<double> Change() const;
};

struct ResultSummary {
  std::string method, pattern;
  // What changed the published weights after the mask ("reconstructed", "masked update", ...);
  // empty when the published weights are the original ones.
  std::string published_label;
  std::vector<TextResultSummary> texts;
  std::optional<double> nm_fraction;  // of the published targets' groups, 0..1
  std::optional<double> wall_seconds;
  bool valid = false;
  bool checkpoints_removed = false;
};

// Reads the fields above out of a report.json object; absent fields stay unset.
ResultSummary SummarizeReport(const nlohmann::json& report);
// DIR/report.json summarized; nullopt when it is absent or not JSON.
std::optional<ResultSummary> SummarizeReportIn(const std::filesystem::path& output_dir);

// "code-eval.txt: dense 4.76 -> pruned 7.90 (+66.0%), magnitude 12.50"; one line per text, then
// "published: 100.0% of target groups 2:4 (valid); took 1m32s".
std::vector<std::string> FormatResultLines(const ResultSummary& s);
// One short cell for tables: the first text's "4.76 -> 7.90 (+66.0%)", "-" when unknown.
std::string FormatResultCell(const ResultSummary& s);
// "+66.0%" / "-3.1%".
std::string FormatPercentChange(double ratio);
// Perplexity with two decimals ("4.76"), "nan"/"inf" as such.
std::string FormatPerplexity(double ppl);
// The fewest significant digits that read back as `v` ("0.1", "4", "1e-05").
std::string FormatShortest(double v);

}  // namespace ps

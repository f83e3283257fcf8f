#include "common/result_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "common/file_util.h"
#include "common/progress.h"

namespace ps {

using json = nlohmann::json;

namespace {

std::optional<double> PerplexityAt(const json& j, const std::string& text) {
  if (!j.is_object() || !j.contains(text)) return std::nullopt;
  const json& t = j.at(text);
  if (t.is_object() && t.contains("perplexity") && t.at("perplexity").is_number())
    return t.at("perplexity").get<double>();
  return std::nullopt;
}

}  // namespace

std::optional<double> TextResultSummary::Change() const {
  std::optional<double> after = published ? published : pruned;
  if (!dense || !after || *dense <= 0) return std::nullopt;
  return *after / *dense - 1.0;
}

ResultSummary SummarizeReport(const json& r) {
  ResultSummary s;
  if (!r.is_object()) return s;
  s.method = r.value("method", "");
  s.pattern = r.value("pattern", "");
  // report["final"] names the stage whose weights were published; older reports without it had
  // the masked update as the only stage that changed weights. Unset: the original weights.
  const json* published_eval = nullptr;
  if (r.contains("final") && r.at("final").is_object() && r.at("final").contains("eval")) {
    const std::string stage = r.at("final").value("stage", "pruned");
    if (stage == "reconstruction") s.published_label = "reconstructed";
    if (stage == "masked_update") s.published_label = "masked update";
    if (!s.published_label.empty()) published_eval = &r.at("final").at("eval");
  } else if (r.contains("masked_update") && r.at("masked_update").is_object() &&
             r.at("masked_update").contains("eval")) {
    s.published_label = "masked update";
    published_eval = &r.at("masked_update").at("eval");
  }
  // Texts in the order of the dense evaluation (the job file's order); nlohmann's objects are
  // sorted by key, which is the order they are shown in.
  std::vector<std::string> names;
  for (const char* key : {"dense", "pruned"})
    if (r.contains(key) && r.at(key).is_object())
      for (const auto& [name, _] : r.at(key).items())
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  for (const auto& name : names) {
    TextResultSummary t;
    t.text = name;
    if (r.contains("dense")) t.dense = PerplexityAt(r.at("dense"), name);
    if (r.contains("pruned")) t.pruned = PerplexityAt(r.at("pruned"), name);
    if (published_eval) t.published = PerplexityAt(*published_eval, name);
    if (r.contains("baselines") && r.at("baselines").is_object())
      for (const auto& [method, texts] : r.at("baselines").items())
        if (auto p = PerplexityAt(texts, name)) t.baselines[method] = *p;
    s.texts.push_back(std::move(t));
  }
  if (r.contains("validity") && r.at("validity").is_object()) {
    const json& v = r.at("validity");
    s.valid = v.value("valid", false);
    // Weighted by each layer's group count: the fraction of all target groups that are N:M.
    double groups = 0, sparse = 0;
    if (v.contains("layers") && v.at("layers").is_array())
      for (const auto& l : v.at("layers")) {
        if (!l.contains("groups") || !l.contains("nm_sparse_fraction")) continue;
        double g = l.at("groups").get<double>();
        groups += g;
        sparse += g * l.at("nm_sparse_fraction").get<double>();
      }
    if (groups > 0) s.nm_fraction = sparse / groups;
  }
  if (r.contains("wall_seconds") && r.at("wall_seconds").is_number())
    s.wall_seconds = r.at("wall_seconds").get<double>();
  s.checkpoints_removed = r.value("checkpoints_removed", false);
  return s;
}

std::optional<ResultSummary> SummarizeReportIn(const std::filesystem::path& output_dir) {
  std::error_code ec;
  const auto file = output_dir / "report.json";
  if (output_dir.empty() || !std::filesystem::is_regular_file(file, ec)) return std::nullopt;
  try {
    return SummarizeReport(json::parse(ReadFile(file)));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

std::string FormatPerplexity(double ppl) {
  if (std::isnan(ppl)) return "nan";
  if (std::isinf(ppl)) return "inf";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", ppl);
  return buf;
}

std::string FormatShortest(double v) {
  char buf[40];
  for (int p = 1; p <= 17; ++p) {
    std::snprintf(buf, sizeof buf, "%.*g", p, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

std::string FormatPercentChange(double ratio) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%+.1f%%", ratio * 100.0);
  return buf;
}

std::vector<std::string> FormatResultLines(const ResultSummary& s) {
  std::vector<std::string> lines;
  for (const auto& t : s.texts) {
    std::string line = t.text + ":";
    auto ppl = [](const std::optional<double>& v) { return v ? FormatPerplexity(*v) : "?"; };
    line += " dense " + ppl(t.dense) + " -> pruned " + ppl(t.pruned);
    if (t.dense && t.pruned && *t.dense > 0)
      line += " (" + FormatPercentChange(*t.pruned / *t.dense - 1.0) + ")";
    if (t.published) {
      line += " -> " + s.published_label + " " + FormatPerplexity(*t.published);
      if (auto c = t.Change()) line += " (" + FormatPercentChange(*c) + ")";
    }
    for (const auto& [method, p] : t.baselines) line += ", " + method + " " + FormatPerplexity(p);
    lines.push_back(line);
  }
  std::string pub = "published:";
  if (s.nm_fraction) {
    char buf[64];
    std::snprintf(buf, sizeof buf, " %.1f%% of target groups %s", *s.nm_fraction * 100.0,
                  s.pattern.empty() ? "N:M" : s.pattern.c_str());
    pub += buf;
    pub += s.valid ? " (valid)" : " (NOT valid: see report.json validity)";
  } else {
    pub += " mask fraction unknown";
  }
  if (s.wall_seconds) pub += "; took " + FormatDuration(*s.wall_seconds);
  lines.push_back(pub);
  return lines;
}

std::string FormatResultCell(const ResultSummary& s) {
  if (s.texts.empty()) return "-";
  const auto& t = s.texts.front();
  std::optional<double> after = t.published ? t.published : t.pruned;
  if (!t.dense || !after) return "-";
  std::string cell = FormatPerplexity(*t.dense) + "->" + FormatPerplexity(*after);
  if (auto c = t.Change()) cell += " (" + FormatPercentChange(*c) + ")";
  return cell;
}

}  // namespace ps

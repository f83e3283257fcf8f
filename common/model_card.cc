#include "common/model_card.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/result_summary.h"

namespace ps {

using json = nlohmann::json;

namespace {

std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "?";
  const json& v = j.at(key);
  return v.is_string() ? v.get<std::string>() : v.dump();
}

std::string FormatLine(const std::string& format) {
  if (format == "compressed-tensors")
    return "compressed-tensors `sparse-24-bitmask`: each target weight is stored as its kept "
           "values (`.compressed`), a packed bitmask (`.bitmask`) and its shape (`.shape`); "
           "`config.json` carries `quantization_config.sparsity_config`. vLLM and transformers "
           "with compressed-tensors load it; `pstool eval --model DIR` and `pstool unpack` too.";
  if (format == "native")
    return "native 2:4: each target weight is stored as its kept values `[out, in/2]` "
           "(`.sparse24.values`) and the 2-bit position of each (`.sparse24.meta`), the layout "
           "2:4 kernels load. `pstool eval --model DIR` loads it; `pstool unpack` restores the "
           "dense files.";
  return "Hugging Face directory (dense layout, the pruned weights are zeros): loads wherever the "
         "base model does.";
}

}  // namespace

std::string ModelCard(const json& r, const std::string& format) {
  const ResultSummary s = SummarizeReport(r);
  const json data = r.value("data", json::object());
  const json model = data.value("model", json::object());
  const std::string method = Str(r, "method"), pattern = Str(r, "pattern");
  std::string out;
  out += "---\ntags:\n- pruned\n- sparsity\n- " + pattern + "\n- " + method + "\n---\n";
  out += "# " + Str(model, "path") + ", pruned " + pattern + " with " + method + "\n\n";
  out += "Every target linear weight (attention q/k/v/o, MLP gate/up/down) keeps at most " +
         pattern.substr(0, pattern.find(':')) + " of every " +
         pattern.substr(pattern.find(':') + 1) +
         " consecutive input weights; embeddings, norms and the output head are unchanged.\n\n";
  out += "Format: " + FormatLine(format) + "\n\n";

  out += "## Quality\n\n";
  if (!s.texts.empty()) {
    std::vector<std::string> baselines;
    for (const auto& t : s.texts)
      for (const auto& [m, _] : t.baselines)
        if (std::find(baselines.begin(), baselines.end(), m) == baselines.end())
          baselines.push_back(m);
    out += "| text | dense | pruned | change |";
    for (const auto& b : baselines) out += " " + b + " |";
    out += "\n| --- | --- | --- | --- |";
    for (size_t i = 0; i < baselines.size(); ++i) out += " --- |";
    out += "\n";
    for (const auto& t : s.texts) {
      std::optional<double> after = t.published ? t.published : t.pruned;
      out += "| " + t.text + " | " + (t.dense ? FormatPerplexity(*t.dense) : "?") + " | " +
             (after ? FormatPerplexity(*after) : "?") + " | " +
             (t.Change() ? FormatPercentChange(*t.Change()) : "?") + " |";
      for (const auto& b : baselines)
        out += " " + (t.baselines.count(b) ? FormatPerplexity(t.baselines.at(b)) : "-") + " |";
      out += "\n";
    }
    out +=
        "\nPerplexity by the standard protocol (non-overlapping windows of `evaluation.ctx` "
        "tokens; `evaluation.max_windows` of them), lower is better.";
    if (s.texts.front().published)
      out += " The pruned figure is the published model's (" + s.published_label +
             " after the mask was chosen).";
    out += "\n\n";
  } else {
    out += "No evaluation text was given (`evaluation.ppl`).\n\n";
  }
  if (s.nm_fraction) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f%%", *s.nm_fraction * 100);
    out += std::string("Validity: ") + buf + " of the target groups are " + pattern +
           (s.valid ? " (checked on the published files: valid)" : " (NOT valid)") + ".\n\n";
  }

  out += "## Data\n\n";
  out += "| what | path | SHA-256 |\n| --- | --- | --- |\n";
  out +=
      "| base model (safetensors) | " + Str(model, "path") + " | " + Str(model, "sha256") + " |\n";
  if (data.contains("calibration")) {
    const json& c = data.at("calibration");
    out += "| calibration (" + Str(c, "samples") + " samples, " + Str(c, "tokens") + " tokens) | " +
           Str(c, "path") + " | " + Str(c, "sha256") + " |\n";
  }
  if (data.contains("evaluation"))
    for (const auto& e : data.at("evaluation"))
      out += "| evaluation | " + Str(e, "path") + " | " + Str(e, "sha256") + " |\n";
  out += "\n## Settings\n\n";
  out += "The job (canonical form; its SHA-256 is `" + Str(r, "job_hash") + "`), run on " +
         Str(r, "ranks") + " rank(s), device " + Str(r, "device") + ":\n\n```yaml\n" +
         r.value("job_yaml", std::string()) + "```\n";
  return out;
}

}  // namespace ps

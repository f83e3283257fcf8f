#include "server/result_metrics.h"

#include <google/protobuf/util/time_util.h>

namespace ps {

namespace pb = proxsparse::v1;

namespace {
const char* kFamilies[] = {
    "proxsparse_job_dense_perplexity",        "proxsparse_job_pruned_perplexity",
    "proxsparse_job_perplexity_change_ratio", "proxsparse_job_baseline_perplexity",
    "proxsparse_job_published_nm_ratio",      "proxsparse_job_wall_seconds"};
}  // namespace

void DeclareResultMetrics(MetricsRegistry& m) {
  using T = MetricsRegistry::Type;
  m.Declare(kFamilies[0], T::kGauge, "perplexity of the dense model per evaluation text");
  m.Declare(kFamilies[1], T::kGauge,
            "perplexity of the published pruned model per evaluation text (after the masked "
            "update when the job ran one)");
  m.Declare(kFamilies[2], T::kGauge, "pruned / dense perplexity - 1 per evaluation text");
  m.Declare(kFamilies[3], T::kGauge, "perplexity of a baseline method's mask per evaluation text");
  m.Declare(kFamilies[4], T::kGauge, "fraction of the published target groups that are N:M");
  m.Declare(kFamilies[5], T::kGauge, "wall time of the job's successful attempt");
}

void FillResultMetrics(MetricsRegistry& m, const std::vector<pb::Job>& jobs,
                       double keep_finished_s) {
  using google::protobuf::util::TimeUtil;
  for (const char* f : kFamilies) m.Clear(f);
  const auto now = TimeUtil::GetCurrentTime();
  for (const auto& j : jobs) {
    if (j.state() != pb::JOB_STATE_SUCCEEDED || !j.has_result()) continue;
    if (static_cast<double>((now - j.end_time()).seconds()) > keep_finished_s) continue;
    const pb::JobResult& r = j.result();
    const std::string method = j.spec().method().name();
    for (const auto& t : r.perplexity()) {
      Labels l{{"job_id", j.id()}, {"method", method}, {"text", t.text()}};
      if (t.has_dense()) m.Set(kFamilies[0], l, t.dense());
      const bool has_after = t.has_published() || t.has_pruned();
      const double after = t.has_published() ? t.published() : t.pruned();
      if (has_after) m.Set(kFamilies[1], l, after);
      if (t.has_dense() && has_after && t.dense() > 0)
        m.Set(kFamilies[2], l, after / t.dense() - 1.0);
      for (const auto& [baseline, ppl] : t.baselines())
        m.Set(kFamilies[3], {{"job_id", j.id()}, {"baseline", baseline}, {"text", t.text()}}, ppl);
    }
    Labels jm{{"job_id", j.id()}, {"method", method}};
    if (r.has_nm_fraction()) m.Set(kFamilies[4], jm, r.nm_fraction());
    if (r.has_wall_seconds()) m.Set(kFamilies[5], jm, r.wall_seconds());
  }
}

}  // namespace ps

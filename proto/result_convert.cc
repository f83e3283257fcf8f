#include "proto/result_convert.h"

namespace ps {

namespace pb = proxsparse::v1;

pb::JobResult ResultToProto(const ResultSummary& s) {
  pb::JobResult r;
  r.set_method(s.method);
  r.set_pattern(s.pattern);
  r.set_published_label(s.published_label);
  for (const auto& t : s.texts) {
    pb::TextPerplexity* p = r.add_perplexity();
    p->set_text(t.text);
    if (t.dense) p->set_dense(*t.dense);
    if (t.pruned) p->set_pruned(*t.pruned);
    if (t.published) p->set_published(*t.published);
    for (const auto& [m, v] : t.baselines) (*p->mutable_baselines())[m] = v;
  }
  if (s.nm_fraction) r.set_nm_fraction(*s.nm_fraction);
  if (s.wall_seconds) r.set_wall_seconds(*s.wall_seconds);
  r.set_valid(s.valid);
  r.set_checkpoints_removed(s.checkpoints_removed);
  return r;
}

ResultSummary ResultFromProto(const pb::JobResult& r) {
  ResultSummary s;
  s.method = r.method();
  s.pattern = r.pattern();
  s.published_label = r.published_label();
  for (const auto& p : r.perplexity()) {
    TextResultSummary t;
    t.text = p.text();
    if (p.has_dense()) t.dense = p.dense();
    if (p.has_pruned()) t.pruned = p.pruned();
    if (p.has_published()) t.published = p.published();
    for (const auto& [m, v] : p.baselines()) t.baselines[m] = v;
    s.texts.push_back(std::move(t));
  }
  if (r.has_nm_fraction()) s.nm_fraction = r.nm_fraction();
  if (r.has_wall_seconds()) s.wall_seconds = r.wall_seconds();
  s.valid = r.valid();
  s.checkpoints_removed = r.checkpoints_removed();
  return s;
}

}  // namespace ps

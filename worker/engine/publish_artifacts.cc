#include "worker/engine/publish_artifacts.h"

#include <chrono>

#include "common/error.h"
#include "common/file_util.h"
#include "common/model_card.h"
#include "worker/pack/pack_model.h"

namespace ps {

using json = nlohmann::json;

json PublishArtifacts(const JobSpec& spec, const std::filesystem::path& out, const json& report,
                      ProgressSink& progress) {
  json result = json::object();
  json skipped = json::array();
  const bool valid = report.contains("validity") && report["validity"].value("valid", false);
  const bool nm_ok =
      report.contains("validity") && report["validity"].value("nm_violations", int64_t{-1}) == 0;
  for (const char* kind : {"compressed-tensors", "native"}) {
    if (!spec.Publishes(kind)) continue;
    if (!nm_ok) {  // the packed forms hold 2:4 weights only; the check above said they are not
      progress.Log(std::string("publishing: skipping ") + kind +
                   ": the published model is not 2:4 everywhere (report.json validity)");
      skipped.push_back(kind);
      continue;
    }
    const auto t0 = std::chrono::steady_clock::now();
    pack::PackOptions o;
    o.model = out / "model";
    o.output = out / kind;
    o.base_model = spec.model;
    o.format = pack::ParseFormat(kind);
    if (std::filesystem::exists(o.output)) RemoveTree(o.output);  // a resumed attempt's leftovers
    pack::PackReport rep = pack::PackModel(o);
    WriteFileAtomic(o.output / "README.md", ModelCard(report, kind));
    result[kind] = rep.ToJson();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress.Log(std::string("publishing: ") + kind + "/ written (" +
                 std::to_string(rep.artifact_bytes >> 20) + " MiB, dense " +
                 std::to_string(rep.dense_bytes >> 20) + " MiB) in " + FormatDuration(secs));
  }
  if (spec.Publishes("model")) {
    WriteFileAtomic(out / "model" / "README.md", ModelCard(report, "model"));
  } else if (const std::error_code ec = RemoveTree(out / "model")) {
    throw Error("cannot remove " + (out / "model").string() + ": " + ec.message());
  }
  if (!skipped.empty()) result["skipped"] = skipped;
  result["valid"] = valid;
  return result;
}

}  // namespace ps

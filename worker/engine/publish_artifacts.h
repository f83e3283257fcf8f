// The artifact forms a job publishes besides OUTPUT/model (job file `publish:`, docs/artifacts.md):
// compressed-tensors and native 2:4 directories packed from the published model, a model card
// (README.md) in every model directory, and model/ itself removed when it was not asked for.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/job_spec.h"
#include "common/progress.h"

namespace ps {

// `report` must already hold the data, perplexity and validity sections (the model cards quote
// them). Returns {"compressed-tensors": {sizes...}, "native": {...}, "skipped": [...]}.
nlohmann::json PublishArtifacts(const JobSpec& spec, const std::filesystem::path& out,
                                const nlohmann::json& report, ProgressSink& progress);

}  // namespace ps

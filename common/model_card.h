// The model card (README.md) every model directory a job publishes carries: what it is (base
// model, method, pattern, storage format), the settings (the canonical job), the data it saw
// (paths and SHA-256), the perplexities and the validity check, all read from report.json.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace ps {

// `format`: "model" (dense-layout HF directory), "compressed-tensors" or "native".
std::string ModelCard(const nlohmann::json& report, const std::string& format);

}  // namespace ps

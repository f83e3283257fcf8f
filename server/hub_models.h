// `model: hf://ORG/NAME[@REVISION]` in a submitted job file: psd downloads the model from the
// Hub (HF_ENDPOINT, HF_TOKEN; common/hub_client.h) into its cache and the job names the cached
// snapshot directory, so that workers never reach the network and every attempt uses the same
// commit.
#pragma once

#include <filesystem>
#include <string>

namespace ps {

// The job file's text with an hf:// model replaced by the absolute snapshot directory under
// `cache` (downloaded first; files already cached are checked and kept). Other texts are returned
// unchanged. Throws ps::Error "model: ..." with the Hub's problem.
std::string ResolveHubModel(const std::string& yaml, const std::filesystem::path& cache);

}  // namespace ps

// Downloading models from the Hugging Face Hub (or anything that speaks its HTTP API): the model
// info call (`GET /api/models/ORG/NAME/revision/REV?blobs=true`) lists the files and their
// SHA-256 (LFS files); each file comes from `GET /ORG/NAME/resolve/COMMIT/FILE`, resumed with a
// Range request where a previous try stopped, and checked against its SHA-256 (or size) before it
// is moved into place. Used by `pstool download` and by psd for `model: hf://ORG/NAME`.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace ps {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string token;                                // HF_TOKEN (or HUGGING_FACE_HUB_TOKEN)
  std::string revision = "main";
  int attempts = 5;  // per file; each resumes where the previous one stopped
  std::function<void(const std::string&)> log;  // progress and status lines; null: quiet
};

// Endpoint and token from HF_ENDPOINT, HF_TOKEN / HUGGING_FACE_HUB_TOKEN.
HubOptions HubOptionsFromEnvironment();
// HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub.
std::filesystem::path DefaultHubCache();

struct HubDownload {
  std::string repo, revision, commit;
  std::vector<std::string> files;
  uint64_t bytes = 0;          // bytes of all files
  uint64_t fetched_bytes = 0;  // bytes that came over the network this time
};

// Checks "ORG/NAME" (letters, digits, '-', '_', '.'); throws ps::Error naming the problem.
void CheckRepoId(const std::string& repo);

// Downloads the files a model needs (*.json, *.safetensors, tokenizer files; no sub-directories,
// no *.bin / *.pt alternatives) into `dir`. Files already there with the right SHA-256 / size
// are kept. Throws ps::Error with advice for missing, private and gated repositories.
HubDownload DownloadModel(const std::string& repo, const std::filesystem::path& dir,
                          const HubOptions& options);

// The same into CACHE/models--ORG--NAME/snapshots/COMMIT (reused when complete); returns it.
std::filesystem::path DownloadToCache(const std::string& repo, const std::filesystem::path& cache,
                                      const HubOptions& options, HubDownload* info = nullptr);

}  // namespace ps

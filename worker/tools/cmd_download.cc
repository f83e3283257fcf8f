// pstool download ORG/NAME [--revision R] [--output DIR]: a model from the Hugging Face Hub (or
// HF_ENDPOINT), resumable and SHA-256-checked (common/hub_client.h). Without --output it goes into
// the Hub cache (HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub). Prints one JSON line.
#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/hub_client.h"
#include "worker/tools/command.h"

namespace ps {
namespace {

struct DownloadArgs {
  std::string repo, revision = "main", output, cache;
  bool quiet = false;
};

int RunDownload(const DownloadArgs& a) {
  HubOptions o = HubOptionsFromEnvironment();
  o.revision = a.revision;
  if (!a.quiet) o.log = [](const std::string& line) { std::cerr << line << "\n"; };
  HubDownload d;
  std::filesystem::path dir;
  if (!a.output.empty()) {
    dir = a.output;
    d = DownloadModel(a.repo, dir, o);
  } else {
    dir = DownloadToCache(
        a.repo, a.cache.empty() ? DefaultHubCache() : std::filesystem::path(a.cache), o, &d);
  }
  std::cout << nlohmann::json{{"repo", d.repo},
                              {"revision", d.revision},
                              {"commit", d.commit},
                              {"dir", std::filesystem::absolute(dir).string()},
                              {"files", d.files.size()},
                              {"bytes", d.bytes},
                              {"downloaded_bytes", d.fetched_bytes}}
                   .dump()
            << "\n";
  return 0;
}

std::function<int()> Setup(CLI::App& app) {
  auto a = std::make_shared<DownloadArgs>();
  app.footer(
      "Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN for private and gated "
      "repositories, HF_HUB_CACHE / HF_HOME for the cache.");
  app.add_option("repo", a->repo, "model id ORG/NAME")->required();
  app.add_option("--revision", a->revision, "branch, tag or commit")->capture_default_str();
  app.add_option("--output", a->output, "directory for the model (default: the Hub cache)");
  app.add_option("--cache-dir", a->cache, "Hub cache directory (without --output)");
  app.add_flag("--quiet", a->quiet, "no progress on stderr");
  return [a] { return RunDownload(*a); };
}

const RegisterCommand kRegister("download", {"download a model from the Hugging Face Hub", Setup});

}  // namespace
}  // namespace ps

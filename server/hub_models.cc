#include "server/hub_models.h"

#include <yaml-cpp/yaml.h>

#include <cstdio>

#include "common/error.h"
#include "common/hub_client.h"

namespace ps {

std::string ResolveHubModel(const std::string& yaml, const std::filesystem::path& cache) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception&) {
    return yaml;  // the job parser reports it with the file's name
  }
  if (!root.IsMap() || !root["model"] || !root["model"].IsScalar()) return yaml;
  const std::string model = root["model"].Scalar();
  const std::string scheme = "hf://";
  if (model.rfind(scheme, 0) != 0) return yaml;
  std::string repo = model.substr(scheme.size());
  HubOptions o = HubOptionsFromEnvironment();
  if (auto at = repo.find('@'); at != std::string::npos) {
    o.revision = repo.substr(at + 1);
    repo = repo.substr(0, at);
  }
  o.log = [&](const std::string& line) {
    std::fprintf(stderr, "hub %s: %s\n", model.c_str(), line.c_str());
  };
  std::filesystem::path dir;
  try {
    dir = DownloadToCache(repo, cache, o);
  } catch (const Error& e) {
    throw Error("model: " + model + ": " + e.what());
  }
  // Replace the value where it is written (the rest of the text, comments included, stays).
  const auto mark = root["model"].Mark();
  std::string out = yaml;
  size_t pos = out.find(model, mark.pos >= 0 ? static_cast<size_t>(mark.pos) : 0);
  if (pos == std::string::npos) pos = out.find(model);
  if (pos == std::string::npos) throw Error("model: cannot find '" + model + "' in the job file");
  out.replace(pos, model.size(), dir.string());
  return out;
}

}  // namespace ps

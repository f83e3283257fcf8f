#include "worker/tools/job_overrides.h"

#include <yaml-cpp/yaml.h>

#include "common/error.h"
#include "common/file_util.h"

namespace ps {

JobSpec LoadJobSpecWithOverrides(const std::filesystem::path& file,
                                 const std::vector<std::string>& overrides) {
  if (overrides.empty()) return LoadJobSpec(file);
  if (!std::filesystem::is_regular_file(file)) throw Error(file.string() + ": job file not found");
  YAML::Node root;
  try {
    root = YAML::Load(ReadFile(file));
  } catch (const YAML::Exception& e) {
    throw Error(file.string() + ": " + e.what());
  }
  for (const auto& o : overrides) {
    auto eq = o.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--set " + o + ": expected KEY.PATH=VALUE");
    std::string path = o.substr(0, eq);
    YAML::Node value;
    try {
      value = YAML::Load(o.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw Error("--set " + o + ": " + e.what());
    }
    // Walk (and create) the maps along the dotted path; yaml-cpp nodes are handles, so
    // reassigning `node` must go through reset().
    YAML::Node node;
    node.reset(root);
    size_t start = 0;
    while (true) {
      size_t dot = path.find('.', start);
      std::string key =
          path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (key.empty()) throw Error("--set " + o + ": empty key in '" + path + "'");
      if (dot == std::string::npos) {
        node[key] = value;
        break;
      }
      if (!node[key] || !node[key].IsMap()) node[key] = YAML::Node(YAML::NodeType::Map);
      YAML::Node next = node[key];
      node.reset(next);
      start = dot + 1;
    }
  }
  YAML::Emitter e;
  e << root;
  std::filesystem::path abs = std::filesystem::absolute(file);
  return ParseJobSpec(e.c_str(), abs.parent_path(), file.string() + " (with --set)");
}

}  // namespace ps

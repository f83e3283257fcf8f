#include "common/yaml_overrides.h"

#include <yaml-cpp/yaml.h>

#include "common/error.h"

namespace ps {

std::string ApplyYamlOverrides(std::string_view yaml, const std::vector<std::string>& overrides,
                               const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    throw Error(source + ": " + e.what());
  }
  if (!root || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  if (!root.IsMap()) throw Error(source + ": the job file is not a YAML map of keys");
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
  return std::string(e.c_str()) + "\n";
}

}  // namespace ps

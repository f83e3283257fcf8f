// `--set KEY.PATH=VALUE` on a YAML document (psworker --set, psctl submit --set): each VALUE is
// parsed as YAML and put at the dotted path, creating maps on the way.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ps {

// The document with every override applied, re-emitted as YAML. Throws ps::Error naming the
// override for "KEY" without "=", empty keys, or YAML that does not parse (`source` names the
// document in messages).
std::string ApplyYamlOverrides(std::string_view yaml, const std::vector<std::string>& overrides,
                               const std::string& source);

}  // namespace ps

// Which tensors of a Llama-family checkpoint are 2:4 pruned: the q, k, v, o, gate, up and down
// projections of every decoder layer (not embeddings, norms or lm_head), as in the papers.
#pragma once

#include <string_view>

namespace ps::pack {

inline bool IsPruneTarget(std::string_view name) {
  constexpr std::string_view kSuffixes[] = {".self_attn.q_proj.weight", ".self_attn.k_proj.weight",
                                            ".self_attn.v_proj.weight", ".self_attn.o_proj.weight",
                                            ".mlp.gate_proj.weight",    ".mlp.up_proj.weight",
                                            ".mlp.down_proj.weight"};
  for (auto s : kSuffixes)
    if (name.size() > s.size() && name.substr(name.size() - s.size()) == s) return true;
  return false;
}

// "a.b.weight" -> "a.b" (compressed-tensors names its tensors after the module).
inline std::string_view ModuleOf(std::string_view weight_name) {
  constexpr std::string_view kW = ".weight";
  if (weight_name.size() > kW.size() && weight_name.substr(weight_name.size() - kW.size()) == kW)
    return weight_name.substr(0, weight_name.size() - kW.size());
  return weight_name;
}

}  // namespace ps::pack

#include "common/method_registry.h"

#include <algorithm>

#include "common/error.h"

namespace ps {

const std::vector<std::string_view>& TrainingKeys() {
  static const std::vector<std::string_view> keys = {"lr",           "warmup_ratio",  "epochs",
                                                     "max_steps",    "batch_size",    "grad_accum",
                                                     "master_dtype", "overlap_update"};
  return keys;
}

namespace {

std::vector<std::string_view> WithTrainingKeys(std::vector<std::string_view> own) {
  std::vector<std::string_view> keys = TrainingKeys();
  keys.insert(keys.end(), own.begin(), own.end());
  return keys;
}

}  // namespace

const std::vector<MethodInfo>& Methods() {
  static const std::vector<MethodInfo> methods = {
      {"proxsparse", "learned N:M masks by proximal gradient training (the ProxSparse paper)", true,
       true, false, WithTrainingKeys({"lambda1", "lambda2", "epsilon", "trainable", "hard"})},
      {"magnitude", "keep the N largest |W| of each group", false, false, false, {}},
      {"wanda",
       "keep the N largest |W|·‖X‖ of each group (calibration activations)",
       true,
       false,
       false,
       {}},
      {"sparsegpt",
       "OBS-style pruning with the weight update, layer by layer",
       true,
       false,
       true,
       {"blocksize", "percdamp"}},
      {"maskllm", "learned N:M masks by Gumbel-softmax over candidate masks (MaskLLM)", true, true,
       false, WithTrainingKeys({"tau", "kappa", "prior", "prior_alpha", "sparse_reg"})},
  };
  return methods;
}

const MethodInfo* FindMethod(std::string_view name) {
  const auto& all = Methods();
  auto it =
      std::find_if(all.begin(), all.end(), [&](const MethodInfo& m) { return m.name == name; });
  return it == all.end() ? nullptr : &*it;
}

const MethodInfo& GetMethod(std::string_view name) {
  if (const MethodInfo* m = FindMethod(name)) return *m;
  throw Error("method '" + std::string(name) + "' is not one of " + MethodNames());
}

std::string MethodNames(std::string_view separator) {
  std::string out;
  for (const auto& m : Methods())
    out += (out.empty() ? "" : std::string(separator)) + std::string(m.name);
  return out;
}

}  // namespace ps

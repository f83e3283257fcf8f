#include "worker/engine/reconstruction.h"

#include <chrono>
#include <optional>

#include "common/error.h"
#include "worker/engine/layerwise_rows.h"
#include "worker/methods/layerwise.h"

namespace ps {

nlohmann::json RunReconstruction(LlamaForCausalLM& model, const JobSpec& spec, const MaskMap& masks,
                                 const std::vector<std::vector<int32_t>>& samples,
                                 Communicator& comm, ProgressSink& progress,
                                 ShardedLinearWeights* sharded) {
  const auto t0 = std::chrono::steady_clock::now();
  // Masks travel keyed by parameter name; the layer-wise driver keys them by module name.
  std::map<std::string, torch::Tensor> by_module;
  const std::string suffix = ".weight";
  for (const auto& [name, mask] : masks) {
    if (!name.ends_with(suffix))
      throw Error("reconstruction: mask '" + name + "' is not a .weight");
    by_module[name.substr(0, name.size() - suffix.size())] = mask;
  }
  LayerwiseOptions o;
  o.method = OneShotMethod::kSparseGpt;
  o.pattern = spec.pattern;
  o.sparsegpt.blocksize = spec.method.blocksize;  // SparseGPT's defaults unless the job set them
  o.sparsegpt.percdamp = spec.method.percdamp;
  o.fixed_masks = &by_module;
  o.fixed_masks_exact = spec.reconstruct == "lsq";
  if (comm.size() > 1) o.all_reduce_sum = [&comm](torch::Tensor& t) { comm.AllReduceSum(t); };
  o.on_layer_done = [&](int64_t layer, int64_t layers) {
    ProgressEvent e;
    e.step = layer + 1;
    e.total_steps = layers;
    e.stage = "reconstruct layer " + std::to_string(layer + 1) + "/" + std::to_string(layers);
    if (comm.rank() == 0) progress.Progress(e);
  };
  progress.Log(std::string("reconstructing the kept weights on the fixed masks (") +
               (o.fixed_masks_exact ? "exact least squares" : "OBS") + ", layer by layer)");
  std::optional<LayerwiseRows> rows;
  if (sharded && comm.size() > 1) o.rows = &rows.emplace(*sharded);
  torch::NoGradGuard no_grad;
  LayerwiseResult r = PruneLayerwise(model, RankSamples(samples, comm), o);
  // The driver returns the masks it was given; check anyway, the published masks rely on it.
  for (const auto& [module, mask] : r.masks) {
    if (!mask.equal(by_module.at(module).to(torch::kCPU)))
      throw Error("reconstruction changed the mask of " + module);
  }
  double error = 0;
  for (const auto& [module, e] : r.sparsegpt_error) error += e;
  return {
      {"method", spec.reconstruct},
      {"blocksize", o.sparsegpt.blocksize},
      {"percdamp", o.sparsegpt.percdamp},
      {"calibration_tokens", r.calibration_tokens},
      {"layer_error_sum", error},
      {"masks_unchanged", true},
      {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}};
}

}  // namespace ps

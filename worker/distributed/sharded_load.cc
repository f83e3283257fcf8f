#include "worker/distributed/sharded_load.h"

#include <set>

#include "common/error.h"
#include "worker/io/tensor_rows.h"
#include "worker/models/llama_config.h"

namespace ps {

std::map<std::string, torch::Tensor> ReadRowShards(const Checkpoint& ckpt,
                                                   const std::vector<std::string>& names, int rank,
                                                   int ranks, const torch::TensorOptions& options) {
  std::map<std::string, torch::Tensor> out;
  torch::NoGradGuard no_grad;
  for (const auto& name : names) {
    if (!ckpt.Contains(name)) throw Error(ckpt.dir().string() + ": no tensor " + name);
    const TensorInfo& info = ckpt.Info(name);
    if (info.shape.empty()) throw Error(ckpt.dir().string() + ": " + name + " is a scalar");
    const RowBlock r = RowShard(info.shape[0], rank, ranks);
    out[name] = ReadRows(ckpt, name, r.begin, r.len, options);
  }
  return out;
}

RowShardedLlama LoadLlamaRowSharded(const std::filesystem::path& dir, const LoadOptions& options,
                                    Communicator& comm) {
  RowShardedLlama out;
  if (comm.size() == 1) {
    out.model = LoadLlama(dir, options);
    out.targets = std::make_unique<ShardedLinearWeights>(out.model->TargetLinears(), comm);
    return out;
  }
  const LlamaConfig config = LoadLlamaConfig(dir);
  std::vector<std::string> targets;
  for (int64_t i = 0; i < config.num_hidden_layers; ++i)
    for (const auto& module : TargetLinearNames(i)) targets.push_back(module + ".weight");
  const std::set<std::string> target_set(targets.begin(), targets.end());
  // The whole tensors first (shapes and dtypes of every tensor, targets included, are checked
  // there), then this rank's rows of the targets.
  out.model =
      LoadLlama(dir, options, [&](const std::string& name) { return target_set.count(name) > 0; });
  const Checkpoint ckpt = Checkpoint::Open(dir);
  auto rows = ReadRowShards(ckpt, targets, comm.rank(), comm.size(),
                            torch::dtype(options.dtype).device(options.device));
  out.targets =
      std::make_unique<ShardedLinearWeights>(out.model->TargetLinears(), comm, std::move(rows));
  return out;
}

}  // namespace ps

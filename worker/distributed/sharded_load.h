// Loading a model for parallel.shard: params without any rank ever holding it whole: each rank
// reads, through the checkpoint's memory map, only its own block of rows of every target weight
// (RowShard: the rows ShardedLinearWeights trains, whole rows, so no N:M group is split) and the
// other tensors (embeddings, norms, lm_head) whole. The model code is untouched: the plain loader
// leaves the target weights unallocated (LoadOptions::leave_empty) and the rows read here become
// the ShardedLinearWeights that all-gather them for every forward.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/safetensors.h"
#include "worker/distributed/communicator.h"
#include "worker/distributed/parallelize_llama.h"
#include "worker/models/llama_checkpoint.h"
#include "worker/models/llama_model.h"

namespace ps {

// Rank `rank`'s rows (RowShard over `ranks`) of each tensor in `names`, read from the checkpoint
// with `options`' dtype and device; keyed by name.
std::map<std::string, torch::Tensor> ReadRowShards(const Checkpoint& ckpt,
                                                   const std::vector<std::string>& names, int rank,
                                                   int ranks, const torch::TensorOptions& options);

struct RowShardedLlama {
  std::shared_ptr<LlamaForCausalLM> model;
  // Installed on the model's target linears (declared last: released before the model).
  std::unique_ptr<ShardedLinearWeights> targets;
};

// Loads DIR with the target weights sharded by rows over `comm`'s ranks (see above). Every rank
// calls it. On one rank the model is loaded whole and the shards are its own weights.
RowShardedLlama LoadLlamaRowSharded(const std::filesystem::path& dir, const LoadOptions& options,
                                    Communicator& comm);

}  // namespace ps

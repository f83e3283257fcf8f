#include "worker/distributed/parallelize_llama.h"

#include <torch/autograd.h>

#include <algorithm>

#include "common/error.h"

namespace ps {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Copies every rank's rows into `full` (each rank broadcasts its block, in rank order).
void GatherRows(Communicator& comm, const std::vector<RowBlock>& ranges, const torch::Tensor& local,
                torch::Tensor& full) {
  comm.GroupStart();
  for (int r = 0; r < comm.size(); ++r) {
    const RowBlock& rr = ranges[static_cast<size_t>(r)];
    if (rr.len == 0) continue;
    torch::Tensor block = full.narrow(0, rr.begin, rr.len);  // contiguous: whole rows
    if (r == comm.rank()) block.copy_(local);
    comm.Broadcast(block, r);
  }
  comm.GroupEnd();
}

struct GatherCall : torch::CustomClassHolder {
  Communicator* comm = nullptr;
  std::vector<RowBlock> ranges;
  int64_t rows = 0;
};

// forward: the all-gathered full weight; backward: the full gradient reduce-scattered into this
// rank's rows (sums over ranks).
class AllGatherRows : public torch::autograd::Function<AllGatherRows> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, torch::Tensor local,
                               c10::intrusive_ptr<GatherCall> call) {
    std::vector<int64_t> shape = local.sizes().vec();
    shape[0] = call->rows;
    torch::Tensor full = torch::empty(shape, local.options());
    GatherRows(*call->comm, call->ranges, local.contiguous(), full);
    ctx->saved_data["call"] = c10::IValue::make_capsule(std::move(call));
    return full;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    auto call = c10::static_intrusive_pointer_cast<GatherCall>(ctx->saved_data["call"].toCapsule());
    Communicator& comm = *call->comm;
    const torch::Tensor g = grad_out[0].contiguous();
    torch::Tensor mine;
    comm.GroupStart();
    std::vector<torch::Tensor> blocks(static_cast<size_t>(comm.size()));
    for (int r = 0; r < comm.size(); ++r) {
      const RowBlock& rr = call->ranges[static_cast<size_t>(r)];
      if (rr.len == 0) continue;
      // A copy: the reduce writes in place and autograd's buffer may be shared.
      torch::Tensor block = g.narrow(0, rr.begin, rr.len).clone();
      comm.ReduceSum(block, r);
      blocks[static_cast<size_t>(r)] = block;
    }
    comm.GroupEnd();
    mine = blocks[static_cast<size_t>(comm.rank())];
    return {mine, torch::Tensor()};
  }
};

}  // namespace

RowBlock RowShard(int64_t rows, int rank, int ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks) throw Error("RowShard: bad rank/ranks");
  const int64_t base = rows / ranks, extra = rows % ranks;
  RowBlock r;
  r.len = base + (rank < extra ? 1 : 0);
  r.begin = rank * base + std::min<int64_t>(rank, extra);
  return r;
}

std::string RowShardName(const std::string& name, RowBlock r) {
  return name + "#rows=" + std::to_string(r.begin) + ":" + std::to_string(r.len);
}

std::optional<std::pair<std::string, RowBlock>> ParseRowShardName(const std::string& s) {
  const size_t at = s.rfind("#rows=");
  if (at == std::string::npos) return std::nullopt;
  const size_t colon = s.find(':', at);
  if (colon == std::string::npos) return std::nullopt;
  try {
    RowBlock r;
    size_t used = 0;
    r.begin = std::stoll(s.substr(at + 6, colon - at - 6), &used);
    if (used != colon - at - 6) return std::nullopt;
    r.len = std::stoll(s.substr(colon + 1), &used);
    if (used != s.size() - colon - 1) return std::nullopt;
    return std::make_pair(s.substr(0, at), r);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

ShardedLinearWeights::ShardedLinearWeights(const std::vector<std::shared_ptr<Linear>>& linears,
                                           Communicator& comm)
    : comm_(comm) {
  torch::NoGradGuard no_grad;
  for (const auto& l : linears) {
    Shard s;
    s.name = l->path() + ".weight";
    s.linear = l;
    s.rows = l->weight.size(0);
    for (int r = 0; r < comm.size(); ++r) s.ranges.push_back(RowShard(s.rows, r, comm.size()));
    const RowBlock mine = s.ranges[static_cast<size_t>(comm.rank())];
    if (comm.size() == 1) {
      // One rank: the shard is the whole weight; it stays the matmul's weight (no gather, no
      // copy), so this mode costs nothing over the plain path there.
      s.local = l->weight;
      shards_.push_back(std::move(s));
      continue;
    }
    s.local = l->weight.detach().narrow(0, mine.begin, mine.len).clone().set_requires_grad(true);
    // The full weight is no longer a trained leaf; free its storage (the parameter object stays,
    // so module traversal works; the transform supplies the matmul's weight).
    l->weight.set_requires_grad(false);
    l->weight.set_data(torch::empty({0}, l->weight.options()));
    InstallGather(s);
    shards_.push_back(std::move(s));
  }
}

ShardedLinearWeights::ShardedLinearWeights(const std::vector<std::shared_ptr<Linear>>& linears,
                                           Communicator& comm,
                                           std::map<std::string, torch::Tensor> rows)
    : comm_(comm) {
  if (comm.size() == 1)
    throw Error("ShardedLinearWeights from rows: one rank holds whole weights (load them whole)");
  torch::NoGradGuard no_grad;
  for (const auto& l : linears) {
    Shard s;
    s.name = l->path() + ".weight";
    s.linear = l;
    s.rows = l->out_features();
    for (int r = 0; r < comm.size(); ++r) s.ranges.push_back(RowShard(s.rows, r, comm.size()));
    const RowBlock mine = s.ranges[static_cast<size_t>(comm.rank())];
    auto it = rows.find(s.name);
    if (it == rows.end()) throw Error("ShardedLinearWeights: no rows read for " + s.name);
    if (it->second.dim() != 2 || it->second.size(0) != mine.len ||
        it->second.size(1) != l->in_features())
      throw Error("ShardedLinearWeights: " + s.name + " rows have shape " +
                  c10::str(it->second.sizes()) + ", expected [" + std::to_string(mine.len) + ", " +
                  std::to_string(l->in_features()) + "]");
    s.local = it->second.set_requires_grad(true);
    l->weight.set_requires_grad(false);
    InstallGather(s);
    shards_.push_back(std::move(s));
  }
}

void ShardedLinearWeights::InstallGather(Shard& s) {
  auto call = c10::make_intrusive<GatherCall>();
  call->comm = &comm_;
  call->ranges = s.ranges;
  call->rows = s.rows;
  torch::Tensor local = s.local;
  s.linear->set_weight_transform(
      [local, call](const torch::Tensor&) { return AllGatherRows::apply(local, call); });
}

void ShardedLinearWeights::HoldWhole(size_t i) {
  if (comm_.size() == 1) return;
  Shard& s = shards_.at(i);
  torch::NoGradGuard no_grad;
  torch::Tensor full = Gather(i, s.local.detach());
  s.linear->set_weight_transform([full](const torch::Tensor&) { return full; });
}

void ShardedLinearWeights::ReleaseWhole(size_t i) {
  if (comm_.size() == 1) return;
  InstallGather(shards_.at(i));  // drops the held full weight with the old transform
}

ShardedLinearWeights::~ShardedLinearWeights() {
  if (comm_.size() == 1) return;
  for (auto& s : shards_) s.linear->set_weight_transform(nullptr);
}

std::vector<TrainableTensor> ShardedLinearWeights::Trainables() const {
  std::vector<TrainableTensor> out;
  for (const auto& s : shards_)
    out.push_back({RowShardName(s.name, s.ranges[static_cast<size_t>(comm_.rank())]), s.local});
  return out;
}

torch::Tensor ShardedLinearWeights::Gather(size_t i, const torch::Tensor& part) {
  const Shard& s = shards_.at(i);
  std::vector<int64_t> shape = part.sizes().vec();
  shape[0] = s.rows;
  torch::Tensor full = torch::empty(shape, part.options());
  GatherRows(comm_, s.ranges, part.contiguous(), full);
  return full;
}

void ReshardRowState(std::map<std::string, torch::Tensor>& state,
                     const std::vector<std::string>& wanted) {
  // weight name -> suffix -> [(rows, tensor)]
  std::map<std::string, std::map<std::string, std::vector<std::pair<RowBlock, torch::Tensor>>>>
      held;
  for (const auto& [key, t] : state) {
    const size_t at = key.rfind("#rows=");
    if (at == std::string::npos) continue;
    const size_t dot = key.find('.', at);
    if (dot == std::string::npos) continue;
    auto parsed = ParseRowShardName(key.substr(0, dot));
    if (!parsed) continue;
    held[parsed->first][key.substr(dot)].push_back({parsed->second, t});
  }
  for (const auto& name : wanted) {
    auto parsed = ParseRowShardName(name);
    if (!parsed) continue;
    auto it = held.find(parsed->first);
    if (it == held.end()) continue;
    const RowBlock want = parsed->second;
    for (auto& [suffix, pieces] : it->second) {
      if (state.count(name + suffix)) continue;
      std::sort(pieces.begin(), pieces.end(),
                [](const auto& a, const auto& b) { return a.first.begin < b.first.begin; });
      std::vector<torch::Tensor> parts;
      int64_t next = want.begin;
      for (const auto& [rows, t] : pieces) {
        const int64_t lo = std::max(next, rows.begin);
        const int64_t hi = std::min(want.begin + want.len, rows.begin + rows.len);
        if (lo != next || hi <= lo) continue;
        parts.push_back(t.narrow(0, lo - rows.begin, hi - lo));
        next = hi;
      }
      if (next != want.begin + want.len)
        throw Error("checkpoint: rows " + std::to_string(want.begin) + ".." +
                    std::to_string(want.begin + want.len) + " of " + parsed->first + suffix +
                    " are not in any shard");
      state[name + suffix] = torch::cat(parts, 0).contiguous();
    }
  }
}

}  // namespace ps

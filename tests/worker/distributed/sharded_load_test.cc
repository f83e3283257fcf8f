// Sharded loading (worker/distributed/sharded_load.h): every rank's rows read from the checkpoint
// equal those rows of a full load, for several rank counts (including uneven splits), checkpoints
// in one file and in index-listed shards, bf16 and f32 storage and compute; the rest of the model
// equals the full load and the targets' full weights are never allocated; and reading a rank's
// share costs about that share of memory, not the model (peak RSS of a fresh process).
#include "worker/distributed/sharded_load.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "common/process_memory.h"
#include "tests/testing/error_of.h"
#include "tests/testing/measure_in_child.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/io/tensor_rows.h"
#include "worker/models/llama_checkpoint.h"

namespace ps {
namespace {

// Rank `rank` of `size`; constructing the shards talks to no one, and nothing else may be called.
class FixedRankCommunicator : public Communicator {
 public:
  FixedRankCommunicator(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "fixed"; }
  void AllReduceSum(torch::Tensor&) override { Fail(); }
  void ReduceSum(torch::Tensor&, int) override { Fail(); }
  void Broadcast(torch::Tensor&, int) override { Fail(); }
  void Barrier() override { Fail(); }

 private:
  [[noreturn]] static void Fail() { throw Error("no collectives in a load"); }
  int rank_, size_;
};

std::set<std::string> TargetWeights(const LlamaForCausalLM& model) {
  std::set<std::string> out;
  for (const auto& l : model.TargetLinears()) out.insert(l->path() + ".weight");
  return out;
}

struct Case {
  std::string kind;
  torch::ScalarType stored, compute;
  uint64_t max_shard_bytes;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.kind; }

class ShardedLoad : public ::testing::TestWithParam<Case> {};

TEST_P(ShardedLoad, RowsEqualThoseOfAFullLoad) {
  const Case c = GetParam();
  auto dir = testing::TempDir("sharded_load");
  {
    auto model = testing::RandomModel(testing::TinyConfig(c.kind), 7);
    SaveOptions so;
    so.dtype = c.stored;
    so.max_shard_bytes = c.max_shard_bytes;
    SaveLlama(*model, dir, so);
  }
  ASSERT_EQ(std::filesystem::exists(dir / "model.safetensors.index.json"),
            c.max_shard_bytes < 100'000);
  auto full = LoadLlama(dir, {c.compute, torch::kCPU});
  const auto targets = TargetWeights(*full);
  const std::vector<std::string> names(targets.begin(), targets.end());
  const Checkpoint ckpt = Checkpoint::Open(dir);
  for (int ranks : {1, 2, 3, 4, 5}) {
    for (int rank = 0; rank < ranks; ++rank) {
      SCOPED_TRACE("rank " + std::to_string(rank) + " of " + std::to_string(ranks));
      auto rows = ReadRowShards(ckpt, names, rank, ranks, torch::dtype(c.compute));
      ASSERT_EQ(rows.size(), names.size());
      for (const auto& [name, t] : rows) {
        const torch::Tensor w = full->named_parameters()[name];
        const RowBlock r = RowShard(w.size(0), rank, ranks);
        EXPECT_EQ(t.scalar_type(), c.compute);
        EXPECT_TRUE(t.equal(w.narrow(0, r.begin, r.len))) << name;
      }
      if (ranks == 1) continue;
      FixedRankCommunicator comm(rank, ranks);
      RowShardedLlama sharded = LoadLlamaRowSharded(dir, {c.compute, torch::kCPU}, comm);
      for (const auto& item : sharded.model->named_parameters()) {
        const torch::Tensor w = full->named_parameters()[item.key()];
        if (targets.count(item.key())) {
          EXPECT_EQ(item.value().numel(), 0) << item.key() << " was allocated whole";
        } else {
          EXPECT_TRUE(item.value().equal(w)) << item.key();
        }
      }
      ASSERT_EQ(sharded.targets->size(), names.size());
      for (size_t i = 0; i < sharded.targets->size(); ++i) {
        const std::string& name = sharded.targets->weight_name(i);
        const RowBlock r = sharded.targets->rows(i);
        EXPECT_EQ(r.begin, RowShard(full->named_parameters()[name].size(0), rank, ranks).begin);
        EXPECT_TRUE(sharded.targets->local(i).equal(
            full->named_parameters()[name].narrow(0, r.begin, r.len)))
            << name;
        EXPECT_TRUE(sharded.targets->local(i).requires_grad());
      }
    }
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Layouts, ShardedLoad,
    ::testing::Values(Case{"llama", torch::kFloat32, torch::kFloat32, 5'000'000'000ULL},
                      Case{"llama", torch::kBFloat16, torch::kBFloat16, 20'000},
                      Case{"mistral", torch::kBFloat16, torch::kFloat32, 5'000'000'000ULL},
                      Case{"qwen2", torch::kFloat32, torch::kBFloat16, 20'000}),
    [](const ::testing::TestParamInfo<Case>& p) {
      auto name = [](torch::ScalarType dt) { return dt == torch::kFloat32 ? "f32" : "bf16"; };
      return p.param.kind + "_" + name(p.param.stored) + "_as_" + name(p.param.compute) +
             (p.param.max_shard_bytes < 100'000 ? "_index" : "_one_file");
    });

TEST(ShardedLoadErrors, RowsOutOfRangeAreNamed) {
  auto dir = testing::TempDir("sharded_load_errors");
  SaveLlama(*testing::RandomModel(testing::TinyConfig("llama"), 3), dir);
  const Checkpoint ckpt = Checkpoint::Open(dir);
  const std::string name = "model.layers.0.mlp.up_proj.weight";  // [48, 32]
  EXPECT_NE(
      testing::ErrorOf([&] { ReadRows(ckpt, name, 40, 9, torch::kFloat32); }).find("rows 40..49"),
      std::string::npos);
  EXPECT_NE(testing::ErrorOf([&] {
              ReadRowShards(ckpt, {"model.layers.9.mlp.up_proj.weight"}, 0, 2, torch::kFloat32);
            }).find("no tensor model.layers.9.mlp.up_proj.weight"),
            std::string::npos);
  EXPECT_TRUE(ReadRows(ckpt, name, 0, 0, torch::kFloat32).sizes().equals({0, 32}));
  std::filesystem::remove_all(dir);
}

// A rank of 4 loads its share: the rise of its peak RSS stays near the whole tensors plus a
// quarter of the targets (a full load: models_test's LoadMemory, about the checkpoint's size).
TEST(ShardedLoadMemory, PeakRssIsTheRanksShare) {
  nlohmann::json config = testing::TinyConfig("llama");
  config["hidden_size"] = 1024;
  config["intermediate_size"] = 2816;
  config["num_hidden_layers"] = 8;
  config["num_attention_heads"] = 16;
  config["num_key_value_heads"] = 16;
  config["vocab_size"] = 4096;
  config["torch_dtype"] = "bfloat16";
  auto dir = testing::TempDir("sharded_load_memory");
  double whole = 0, targets = 0;
  {
    LlamaForCausalLM model(ParseLlamaConfig(config), torch::dtype(torch::kBFloat16));
    torch::NoGradGuard no_grad;
    for (auto& item : model.named_parameters()) item.value().fill_(0.5);
    for (const auto& l : model.TargetLinears()) targets += 2.0 * l->weight.numel();
    for (const auto& item : model.named_parameters()) whole += 2.0 * item.value().numel();
    whole -= targets;
    SaveLlama(model, dir);
  }
  auto out = dir / "rss.txt";
  const auto result = testing::MeasureInChild(
      "ShardedLoadMemoryChild.Measure",
      {{"PS_SHARDED_LOAD_DIR", dir.string()}, {"PS_SHARDED_LOAD_OUT", out.string()}}, out);
  ASSERT_GT(result[0], 0);
  const double rise = static_cast<double>(result[1] - result[0]) * 1024.0;
  const double share = whole + targets / 4;
  std::printf("whole tensors %.1f MB + targets %.1f MB / 4 = %.1f MB; peak RSS rise %.1f MB\n",
              whole / 1e6, targets / 1e6, share / 1e6, rise / 1e6);
  EXPECT_LT(rise, share + 24e6);  // + one 16 MB read slice and allocator slack
  EXPECT_GT(rise, 0.9 * share);
  std::filesystem::remove_all(dir);
}

// The measuring half: runs only when the test above starts it.
TEST(ShardedLoadMemoryChild, Measure) {
  const char* dir = std::getenv("PS_SHARDED_LOAD_DIR");
  const char* out = std::getenv("PS_SHARDED_LOAD_OUT");
  if (!dir || !out) GTEST_SKIP() << "started by ShardedLoadMemory.PeakRssIsTheRanksShare";
  FixedRankCommunicator comm(1, 4);
  ResetPeakRss();
  int64_t before = ProcStatusKb("VmRSS");
  RowShardedLlama sharded = LoadLlamaRowSharded(dir, {torch::kBFloat16, torch::kCPU}, comm);
  int64_t peak = ProcStatusKb("VmHWM");
  std::ofstream(out) << before << " " << peak << "\n";
}

}  // namespace
}  // namespace ps

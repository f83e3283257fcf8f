// Publishing (worker/engine/pruned_model.h) streams: each replacement is released before the next
// tensor is asked for, so publishing holds about one tensor whatever the model's size; the output
// is sharded with model.safetensors.index.json when it exceeds max_shard_bytes, and every tensor
// is the replacement or the original's exact bytes.
#include "worker/engine/pruned_model.h"

#include <gtest/gtest.h>

#include <set>

#include "common/safetensors.h"
#include "tests/worker/models/tiny_models.h"
#include "worker/io/tensor_io.h"
#include "worker/models/llama_checkpoint.h"

namespace ps {
namespace {

using WeakTensor = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>;

TEST(PublishStreamed, OneReplacementAliveAtATimeShardedWithIndex) {
  const auto base = testing::TempDir("publish_base");
  const auto out = testing::TempDir("publish_out");
  auto model = testing::RandomModel(testing::TinyConfig("llama"), 5);
  SaveLlama(*model, base);
  std::set<std::string> targets;
  for (const auto& l : model->TargetLinears()) targets.insert(l->path() + ".weight");

  std::vector<WeakTensor> handed_out;
  int64_t alive_at_call = 0;
  const PublishStats stats = WritePrunedModel(
      base, out,
      [&](const std::string& name, const torch::Tensor& original) -> std::optional<torch::Tensor> {
        for (const auto& w : handed_out) alive_at_call += w.expired() ? 0 : 1;
        if (!targets.count(name)) return std::nullopt;
        torch::Tensor r = original * 2;  // a new tensor, as W0 ⊙ mask is
        handed_out.emplace_back(r.getIntrusivePtr());
        return r;
      },
      /*max_shard_bytes=*/20'000);
  EXPECT_EQ(alive_at_call, 0) << "earlier replacements were still held when the next was asked";
  EXPECT_EQ(stats.replaced, static_cast<int64_t>(targets.size()));
  for (const auto& w : handed_out) EXPECT_TRUE(w.expired());

  ASSERT_TRUE(std::filesystem::exists(out / "model.safetensors.index.json"));
  const Checkpoint published = Checkpoint::Open(out);
  const Checkpoint original = Checkpoint::Open(base);
  EXPECT_GT(published.files().size(), 1u);
  EXPECT_EQ(published.Names(), original.Names());
  EXPECT_EQ(stats.tensors, static_cast<int64_t>(original.Names().size()));
  for (const auto& name : original.Names()) {
    const torch::Tensor w0 = TensorView(original, name), w = TensorView(published, name);
    EXPECT_TRUE(w.equal(targets.count(name) ? w0 * 2 : w0)) << name;
  }
  // transformers loads it as a model: so does ours.
  auto loaded = LoadLlama(out);
  EXPECT_TRUE(loaded->named_parameters()["model.norm.weight"].equal(
      model->named_parameters()["model.norm.weight"]));
  std::filesystem::remove_all(base);
  std::filesystem::remove_all(out);
}

}  // namespace
}  // namespace ps

// The server's decode step with fixed shapes (what CUDA graphs replay) against the batched step,
// on the default model (codelm-19m, CPU, fp32): same logits, same greedy tokens, and padding rows
// never touch the keys of a request that sits out a step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "common/error.h"
#include "worker/serve/engine.h"
#include "worker/serve/model_loader.h"

namespace ps::serve {
namespace {

namespace fs = std::filesystem;

fs::path Codelm() { return fs::path(PS_SHARED_DATA) / "codelm-19m"; }

class FixedShapeDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(Codelm() / "config.json")) GTEST_SKIP() << "no " << Codelm();
    LoadSpec spec;
    spec.model = Codelm();
    loaded_ = std::make_unique<LoadedModel>(LoadModel(spec));
  }
  Engine Make(bool fixed) {
    EngineOptions o;
    o.max_batch = 6;
    o.max_len = 300;  // not a multiple of the length bucket: the last bucket is cut at 300
    o.exact_attention = false;
    o.fixed_shapes = fixed;
    return Engine(loaded_->model, o);
  }
  // Options for a 2-slot engine that the constructor must refuse with an error naming `fix`.
  void ExpectRefused(const EngineOptions& o, const std::string& fix, const std::string& why) {
    try {
      Engine e(loaded_->model, o);
      ADD_FAILURE() << why << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fix), std::string::npos) << e.what();
    }
  }
  static EngineOptions Small() {
    EngineOptions o;
    o.max_batch = 2;
    o.max_len = 64;
    o.exact_attention = false;
    return o;
  }
  std::unique_ptr<LoadedModel> loaded_;
};

TEST_F(FixedShapeDecode, BucketsCoverTheirInputs) {
  Engine e = Make(true);
  EXPECT_EQ(e.RowBucket(0), 1);
  EXPECT_EQ(e.RowBucket(1), 2);
  EXPECT_EQ(e.RowBucket(2), 4);
  EXPECT_EQ(e.RowBucket(4), 6);  // capped at the pool's 6 slots
  EXPECT_EQ(e.LengthBucket(1), 128);
  EXPECT_EQ(e.LengthBucket(128), 128);
  EXPECT_EQ(e.LengthBucket(129), 256);
  EXPECT_EQ(e.LengthBucket(299), 300);
  EXPECT_EQ(e.graphs(), 0);
}

TEST_F(FixedShapeDecode, SameLogitsAndTokensAsTheBatchedStep) {
  Engine ref = Make(false), fixed = Make(true);
  const std::vector<std::vector<int32_t>> prompts = {
      {1, 822, 285, 747, 2989}, {1, 1053, 2897, 13}, {1, 363, 474, 297, 3464, 2989, 896}};
  for (Engine* e : {&ref, &fixed}) {
    for (int s = 0; s < 3; ++s) {
      ASSERT_EQ(*e->kv().Acquire(), s);
      e->Prefill(s, prompts[static_cast<size_t>(s)]);
    }
  }
  // Slot 1 sits out the first steps (a padding row of the fixed step), then all three decode;
  // the lengths cross the first 128-position bucket.
  std::vector<int32_t> next = {871, 871, 871};
  for (int step = 0; step < 130; ++step) {
    const std::vector<int> slots = step < 4 ? std::vector<int>{0, 2} : std::vector<int>{0, 1, 2};
    std::vector<int32_t> tokens;
    for (int s : slots) tokens.push_back(next[static_cast<size_t>(s)]);
    const torch::Tensor a = ref.Decode(slots, tokens), b = fixed.Decode(slots, tokens);
    ASSERT_TRUE(torch::allclose(a, b, 1e-4, 1e-4))
        << "step " << step << ": max difference " << (a - b).abs().max().item<float>();
    const torch::Tensor ta = a.argmax(-1), tb = b.argmax(-1);
    ASSERT_TRUE(torch::equal(ta, tb)) << "step " << step;
    for (size_t i = 0; i < slots.size(); ++i)
      next[static_cast<size_t>(slots[i])] =
          static_cast<int32_t>(ta[static_cast<int64_t>(i)].item<int64_t>());
  }
  for (int s = 0; s < 3; ++s) EXPECT_EQ(fixed.kv().length(s), ref.kv().length(s));
}

TEST_F(FixedShapeDecode, WarmUpRunsEveryShapeOnceAndLeavesNoTrace) {
  Engine warmed = Make(true), cold = Make(true);
  std::vector<std::pair<int64_t, int64_t>> seen;
  // Row buckets 1, 2, 4, 6 times length buckets 128, 256, 300.
  EXPECT_EQ(warmed.WarmUp([&](int64_t done, int64_t total) { seen.emplace_back(done, total); }),
            12);
  ASSERT_EQ(seen.size(), 12u);
  EXPECT_EQ(seen.back(), std::make_pair(int64_t{12}, int64_t{12}));
  // Every slot is free and empty again: the pool hands out 0..5 in order, each at length 0.
  for (int s = 0; s < 6; ++s) {
    ASSERT_EQ(warmed.kv().Acquire(), s);
    EXPECT_EQ(warmed.kv().length(s), 0);
  }
  for (int s = 0; s < 6; ++s) warmed.kv().Release(s);
  // A request afterwards gets the logits of an engine that never warmed up.
  const std::vector<int32_t> prompt = {1, 822, 285, 747, 2989};
  std::vector<int32_t> next = {871};
  for (Engine* e : {&warmed, &cold}) {
    ASSERT_EQ(*e->kv().Acquire(), 0);
    e->Prefill(0, prompt);
  }
  for (int step = 0; step < 8; ++step) {
    const torch::Tensor a = warmed.Decode({0}, next), b = cold.Decode({0}, next);
    ASSERT_TRUE(torch::equal(a, b)) << "step " << step;
    next = {static_cast<int32_t>(a.argmax(-1)[0].item<int64_t>())};
  }
}

TEST_F(FixedShapeDecode, WarmUpNeedsEveryKvSlotFreeAndOtherStepsHaveNone) {
  Engine e = Make(true);
  ASSERT_EQ(*e.kv().Acquire(), 0);
  e.kv().set_length(0, 7);
  try {
    e.WarmUp();
    ADD_FAILURE() << "warm-up with a request in slot 0 was accepted";
  } catch (const Error& err) {
    EXPECT_NE(std::string(err.what()).find("before serving"), std::string::npos) << err.what();
  }
  // The refused warm-up took nothing: slot 0 keeps its request, slot 1 is the next free one.
  EXPECT_EQ(e.kv().length(0), 7);
  EXPECT_EQ(e.kv().Acquire(), 1);
  Engine batched = Make(false);
  EXPECT_EQ(batched.WarmUp(), 0);
}

TEST_F(FixedShapeDecode, BadUseIsRefusedWithTheFix) {
  EngineOptions o = Small();
  o.cuda_graphs = true;
  ExpectRefused(o, "--cuda-graphs off", "CUDA graphs on a CPU model");
  o.cuda_graphs = false;
  o.fixed_shapes = true;
  o.exact_attention = true;
  EXPECT_THROW(Engine(loaded_->model, o), Error);
  o.exact_attention = false;
  Engine e(loaded_->model, o);
  ASSERT_EQ(*e.kv().Acquire(), 0);
  e.Prefill(0, {1, 822});
  EXPECT_THROW(e.Decode({0, 0}, {5, 6}), Error);  // a slot twice
  EXPECT_THROW(e.Decode({2}, {5}), Error);        // the scratch slot is nobody's
}

TEST_F(FixedShapeDecode, DecodeAttentionKernelOffTheGpuIsAClearError) {
  EngineOptions o = Small();
  o.decode_kernel = true;
  ExpectRefused(o, "--attention batched", "the decode attention kernel for a CPU model");
  o.exact_attention = true;  // the kernel is batched attention: never with exact
  ExpectRefused(o, "not both", "exact attention with the decode kernel");
}

TEST_F(FixedShapeDecode, FusedDecodeKernelsOffTheGpuAreAClearError) {
  EngineOptions o = Small();
  o.fused_ops = true;
  ExpectRefused(o, "--fused-ops off", "the fused decode kernels for a CPU model");
  o.exact_attention = true;  // the fused kernels run batched steps: never with exact attention
  ExpectRefused(o, "exact attention", "exact attention with the fused decode kernels");
}

}  // namespace
}  // namespace ps::serve

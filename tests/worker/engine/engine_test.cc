#include <gtest/gtest.h>

#include <fstream>

#include "common/error.h"
#include "common/job_spec.h"
#include "common/progress.h"
#include "common/safetensors.h"
#include "tests/worker/engine/engine_fixtures.h"
#include "worker/distributed/communicator.h"
#include "worker/engine/job_runner.h"
#include "worker/engine/train_loop.h"
#include "worker/io/tensor_io.h"
#include "worker/methods/nm_mask.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

using testing::RecordingSink;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::SharedData() / "codelm-19m/tokenizer.model"))
      GTEST_SKIP() << "no shared data (tokenizer) at " << testing::SharedData();
    dir_ = fs::temp_directory_path() /
           ("ps_engine_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    testing::WriteTinyModel(dir_ / "model");
    testing::WriteCalibration(dir_ / "calib.jsonl");
    std::ofstream(dir_ / "eval.txt") << "import os\n\ndef main():\n    print(os.getcwd())\n";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // `eval_extra`: more lines of the evaluation section.
  JobSpec Spec(const std::string& method_yaml, const std::string& out,
               const std::string& eval_extra = "") {
    std::string yaml = "model: model\npattern: \"2:4\"\nseed: 3\nmethod:\n" + method_yaml +
                       "calibration:\n  path: calib.jsonl\n  samples: 6\n  seqlen: 64\n"
                       "evaluation:\n  ppl: [eval.txt]\n  ctx: 16\n  max_windows: 2\n" +
                       eval_extra + "checkpoint:\n  every_steps: 2\noutput: " + out + "\n";
    return ParseJobSpec(yaml, dir_, "test job");
  }

  std::map<std::string, torch::Tensor> Masks(const fs::path& out) {
    auto f = SafetensorsFile::Open(out / "masks.safetensors");
    std::map<std::string, torch::Tensor> m;
    for (const auto& t : f->tensors()) m[t.name] = TensorView(*f, t).clone();
    return m;
  }

  fs::path dir_;
};

TEST_F(EngineTest, MagnitudeJobPublishesValidModel) {
  auto comm = MakeLocalCommunicator();
  RecordingSink sink;
  auto report = RunJob(Spec("  name: magnitude\n", "out"), {}, *comm, sink);
  EXPECT_TRUE(report["validity"]["valid"].get<bool>()) << report.dump(2);
  EXPECT_EQ(report["validity"]["layers"].size(), 14u);  // 7 targets x 2 layers
  EXPECT_TRUE(fs::exists(dir_ / "out/report.json"));
  EXPECT_TRUE(fs::exists(dir_ / "out/model/config.json"));
  EXPECT_TRUE(fs::exists(dir_ / "out/model/tokenizer.model"));
  EXPECT_GT(report["pruned"]["eval.txt"]["perplexity"].get<double>(), 1.0);
  // Non-target tensors are copied bit for bit.
  auto a = Checkpoint::Open(dir_ / "model"), b = Checkpoint::Open(dir_ / "out/model");
  EXPECT_TRUE(torch::equal(TensorView(a, "model.embed_tokens.weight"),
                           TensorView(b, "model.embed_tokens.weight")));
  EXPECT_EQ(Masks(dir_ / "out").size(), 14u);
}

constexpr const char* kProx =
    "  name: proxsparse\n  lambda1: 50.0\n  lr: 1.0e-3\n  max_steps: 6\n  batch_size: 2\n";

TEST_F(EngineTest, ProxSparseTrainsAndIsDeterministic) {
  auto comm = MakeLocalCommunicator();
  RecordingSink sink;
  auto report = RunJob(Spec(kProx, "a"), {}, *comm, sink);
  EXPECT_EQ(report["training"]["steps"].get<int64_t>(), 6);
  EXPECT_TRUE(report["validity"]["valid"].get<bool>());
  ASSERT_EQ(sink.events.size(), 6u);
  EXPECT_GT(sink.events.back().nm_ratio, 0.5);  // a large λ1 makes most groups 2:4 quickly
  // The prox statistics: every group of every step solved exactly, none at the iteration cap.
  EXPECT_EQ(sink.events.back().prox_capped_groups, 0);
  const auto& prox = report["training"]["prox"];
  EXPECT_EQ(prox["capped_groups"].get<int64_t>(), 0) << report["training"].dump();
  EXPECT_GT(prox["groups"].get<int64_t>(), 0);
  EXPECT_TRUE(fs::exists(dir_ / "a/history.csv"));
  EXPECT_FALSE(fs::exists(dir_ / "a/checkpoints"));  // removed after success
  RecordingSink sink2;
  RunJob(Spec(kProx, "b"), {}, *comm, sink2);
  auto ma = Masks(dir_ / "a"), mb = Masks(dir_ / "b");
  for (const auto& [name, m] : ma) EXPECT_TRUE(torch::equal(m, mb.at(name))) << name;
}

// The acceptance "same job file and seed give the same mask on CPU", for every other method
// (ProxSparse above), through the whole job: calibration sampling, method, publishing.
TEST_F(EngineTest, EveryMethodGivesTheSameMaskForTheSameJob) {
  auto comm = MakeLocalCommunicator();
  const std::map<std::string, std::string> methods = {
      {"magnitude", "  name: magnitude\n"},
      {"wanda", "  name: wanda\n"},
      {"sparsegpt", "  name: sparsegpt\n"},
      {"maskllm", "  name: maskllm\n  lr: 5.0e-2\n  max_steps: 3\n  prior: wanda\n"}};
  for (const auto& [method, yaml] : methods) {
    RecordingSink a, b;
    RunJob(Spec(yaml, method + "_a"), {}, *comm, a);
    RunJob(Spec(yaml, method + "_b"), {}, *comm, b);
    auto ma = Masks(dir_ / (method + "_a")), mb = Masks(dir_ / (method + "_b"));
    ASSERT_EQ(ma.size(), 14u) << method;
    for (const auto& [name, m] : ma)
      EXPECT_TRUE(torch::equal(m, mb.at(name))) << method << " " << name;
  }
}

TEST_F(EngineTest, ResumeAfterInterruptionGivesTheSameMask) {
  auto comm = MakeLocalCommunicator();
  RecordingSink full;
  RunJob(Spec(kProx, "full"), {}, *comm, full);
  RecordingSink stopping(3);  // cancels after 3 logged steps: a checkpoint at step 3
  EXPECT_THROW(RunJob(Spec(kProx, "part"), {}, *comm, stopping), Error);
  EXPECT_TRUE(fs::exists(dir_ / "part/checkpoints"));
  RecordingSink rest;
  RunOptions o;
  o.resume = true;
  auto report = RunJob(Spec(kProx, "part"), o, *comm, rest);
  EXPECT_EQ(report["training"]["resumed_from"].get<int64_t>(), 3);
  auto a = Masks(dir_ / "full"), b = Masks(dir_ / "part");
  for (const auto& [name, m] : a) EXPECT_TRUE(torch::equal(m, b.at(name))) << name;
}

// reconstruct: obs keeps every method's mask bit for bit (masks file and published zeros), changes
// the kept weights, and says so in the report; it composes with the masked update.
TEST_F(EngineTest, ReconstructionKeepsTheMethodsMaskAndChangesKeptWeights) {
  auto comm = MakeLocalCommunicator();
  const std::map<std::string, std::string> methods = {
      {"magnitude", "  name: magnitude\n"},
      {"wanda", "  name: wanda\n"},
      {"proxsparse", kProx},
      {"maskllm", "  name: maskllm\n  lr: 5.0e-2\n  max_steps: 3\n  prior: wanda\n"}};
  auto base = Checkpoint::Open(dir_ / "model");
  for (const auto& [method, yaml] : methods) {
    RecordingSink a, b, c;
    auto plain = RunJob(Spec(yaml, method + "_plain"), {}, *comm, a);
    auto rec = RunJob(Spec(yaml + "reconstruct: obs\n", method + "_rec"), {}, *comm, b);
    auto both = RunJob(
        Spec(yaml + "reconstruct: obs\nmasked_update: {steps: 2, lr: 1.0e-3}\n", method + "_mu"),
        {}, *comm, c);
    EXPECT_EQ(plain["final"]["kept_weights"], "original") << method;
    EXPECT_EQ(plain["final"]["stage"], "pruned");
    EXPECT_TRUE(plain["validity"]["frozen_weights"].get<bool>());
    for (const auto* r : {&rec, &both}) {
      EXPECT_TRUE((*r)["validity"]["valid"].get<bool>()) << method << (*r)["validity"].dump();
      EXPECT_TRUE((*r)["validity"]["masks_file_matches_method"].get<bool>());
      EXPECT_EQ((*r)["validity"]["nonzero_outside_mask"].get<int64_t>(), 0);
      EXPECT_FALSE((*r)["validity"]["frozen_weights"].get<bool>());
      EXPECT_EQ((*r)["final"]["kept_weights"], "changed");
      EXPECT_TRUE((*r)["reconstruction"]["masks_unchanged"].get<bool>());
      EXPECT_GT((*r)["reconstruction"]["eval"]["eval.txt"]["perplexity"].get<double>(), 1.0);
      // Before reconstruction the job evaluated the method's own mask on the original weights.
      EXPECT_EQ((*r)["pruned"]["eval.txt"]["perplexity"],
                plain["pruned"]["eval.txt"]["perplexity"]);
    }
    EXPECT_EQ(rec["final"]["stage"], "reconstruction");
    EXPECT_EQ(both["final"]["stage"], "masked_update");
    EXPECT_EQ(both["final"]["eval"]["eval.txt"]["perplexity"],
              both["masked_update"]["eval"]["eval.txt"]["perplexity"]);
    // Same masks with and without reconstruction, bit for bit.
    auto mp = Masks(dir_ / (method + "_plain"));
    for (const auto& out : {method + "_rec", method + "_mu"}) {
      auto m = Masks(dir_ / out);
      ASSERT_EQ(m.size(), mp.size());
      for (const auto& [name, t] : mp) EXPECT_TRUE(torch::equal(t, m.at(name))) << out << name;
    }
    // The kept weights changed.
    auto published = Checkpoint::Open(dir_ / (method + "_rec/model"));
    const std::string q = "model.layers.1.self_attn.q_proj.weight";
    auto mask = UnpackMaskBits(mp.at(q), TensorView(base, q).sizes());
    EXPECT_FALSE(torch::equal(TensorView(published, q), ApplyMask(TensorView(base, q), mask)));
  }
}

// evaluation.baselines: each baseline's perplexity is the one its own job gives on the same
// windows, and running them does not change the job's own result.
TEST_F(EngineTest, BaselinesMatchTheirOwnJobsAndLeaveTheMethodAlone) {
  auto comm = MakeLocalCommunicator();
  RecordingSink s0, s1, s2, s3;
  auto with = RunJob(Spec(kProx, "with", "  baselines: [magnitude, wanda]\n"), {}, *comm, s0);
  auto without = RunJob(Spec(kProx, "without"), {}, *comm, s1);
  auto magnitude = RunJob(Spec("  name: magnitude\n", "mag"), {}, *comm, s2);
  auto wanda = RunJob(Spec("  name: wanda\n", "wanda"), {}, *comm, s3);
  EXPECT_EQ(with["baselines"]["magnitude"]["eval.txt"]["perplexity"],
            magnitude["pruned"]["eval.txt"]["perplexity"]);
  EXPECT_EQ(with["baselines"]["magnitude"]["eval.txt"]["windows"],
            magnitude["pruned"]["eval.txt"]["windows"]);
  EXPECT_EQ(with["baselines"]["wanda"]["eval.txt"]["perplexity"],
            wanda["pruned"]["eval.txt"]["perplexity"]);
  EXPECT_EQ(with["baselines"].size(), 2u);
  EXPECT_EQ(with["pruned"]["eval.txt"]["perplexity"], without["pruned"]["eval.txt"]["perplexity"]);
  EXPECT_EQ(without.count("baselines"), 0u);
  auto a = Masks(dir_ / "with"), b = Masks(dir_ / "without");
  for (const auto& [name, m] : a) EXPECT_TRUE(torch::equal(m, b.at(name))) << name;
}

}  // namespace
}  // namespace ps

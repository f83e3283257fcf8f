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

  JobSpec Spec(const std::string& method_yaml, const std::string& out) {
    std::string yaml = "model: model\npattern: \"2:4\"\nseed: 3\nmethod:\n" + method_yaml +
                       "calibration:\n  path: calib.jsonl\n  samples: 6\n  seqlen: 64\n"
                       "evaluation:\n  ppl: [eval.txt]\n  ctx: 16\n  max_windows: 2\n"
                       "checkpoint:\n  every_steps: 2\noutput: " +
                       out + "\n";
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

}  // namespace
}  // namespace ps

#include "common/job_spec.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/error.h"
#include "common/file_util.h"
#include "tests/testing/error_of.h"
#include "tests/testing/job_inputs.h"
#include "tests/testing/temp_dir.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

const char* kDocExample = R"(
name: default
model: ../../shared/data/codelm-19m
pattern: "2:4"
seed: 0
device: cpu
dtype: fp32
method:
  name: proxsparse
  lambda1: 1.0
  lambda2: 0.0
  epsilon: 0.1
  lr: 1.0e-4
  warmup_ratio: 0.1
  epochs: 1
  batch_size: 1
  grad_accum: 1
  trainable: targets
  master_dtype: fp32
  hard: none
masked_update:
  steps: 0
  lr: 1.0e-5
calibration:
  path: ../../shared/data/code-calib.jsonl.gz
  format: auto
  samples: 64
  seqlen: 512
  sampling: document
evaluation:
  ppl: [../../shared/data/code-eval.txt]
  ctx: 512
  max_windows: 40
  tasks: []
output: ../runs/default
checkpoint:
  every_steps: 50
log_every: 1
resources:
  ranks: 1
  gpus_per_rank: 0
  cpus_per_rank: 1
  memory_gb: 4
  time_limit_minutes: 60
)";

// Parses `text` and returns the error message (empty when it parsed).
std::string ErrorOf(const std::string& text) {
  return testing::ErrorOf([&] { ParseJobSpec(text, "/jobs/a", "job.yaml"); });
}

std::string Minimal(const std::string& extra_method = "", const std::string& extra_top = "") {
  return "model: m\nmethod:\n  name: proxsparse\n" + extra_method +
         "calibration:\n  path: c.jsonl\n" + extra_top;
}

TEST(JobSpec, ParsesTheDocumentedExample) {
  JobSpec s = ParseJobSpec(kDocExample, "/work/main/configs", "default.yaml");
  EXPECT_EQ(s.name, "default");
  EXPECT_EQ(s.model, fs::path("/work/shared/data/codelm-19m"));
  EXPECT_EQ(s.pattern, (NMPattern{2, 4}));
  EXPECT_EQ(s.method.name, "proxsparse");
  EXPECT_DOUBLE_EQ(s.method.lambda1, 1.0);
  EXPECT_DOUBLE_EQ(s.method.lr, 1e-4);
  EXPECT_EQ(s.calibration.path, fs::path("/work/shared/data/code-calib.jsonl.gz"));
  ASSERT_EQ(s.evaluation.ppl.size(), 1u);
  EXPECT_EQ(s.evaluation.ppl[0], fs::path("/work/shared/data/code-eval.txt"));
  EXPECT_EQ(s.output, fs::path("/work/main/runs/default"));
  EXPECT_EQ(s.checkpoint.every_steps, 50);
  EXPECT_EQ(s.resources.ranks, 1);
  EXPECT_DOUBLE_EQ(s.resources.memory_gb, 4);
}

TEST(JobSpec, DefaultsFillMissingKeys) {
  JobSpec s = ParseJobSpec(Minimal(), "/jobs", "job.yaml");
  EXPECT_EQ(s.model, fs::path("/jobs/m"));
  EXPECT_EQ(s.pattern.ToString(), "2:4");
  EXPECT_EQ(s.device, Device::kCpu);
  EXPECT_EQ(s.calibration.samples, 64);
  EXPECT_EQ(s.evaluation.max_windows, 40);
  EXPECT_TRUE(s.output.empty());
  EXPECT_EQ(s.resources.cpus_per_rank, 1);
}

TEST(JobSpec, AbsolutePathsStayAsTheyAre) {
  JobSpec s = ParseJobSpec("model: /abs/model\nmethod: {name: magnitude}\n", "/jobs");
  EXPECT_EQ(s.model, fs::path("/abs/model"));
  EXPECT_TRUE(s.calibration.path.empty());  // magnitude needs no data
}

TEST(JobSpec, UnknownKeysNameTheirPath) {
  EXPECT_NE(ErrorOf(Minimal("", "colour: blue\n")).find("colour: unknown key"), std::string::npos);
  std::string e = ErrorOf(Minimal("  lamda1: 2\n"));
  EXPECT_EQ(e.rfind("method.lamda1: unknown key", 0), 0u) << e;
  EXPECT_NE(e.find("job.yaml line 4"), std::string::npos) << e;
  e = ErrorOf(Minimal("", "resources:\n  gpu: 1\n"));
  EXPECT_EQ(e.rfind("resources.gpu: unknown key", 0), 0u) << e;
  e = ErrorOf(Minimal("", "calibration2: {}\n"));
  EXPECT_EQ(e.rfind("calibration2: unknown key", 0), 0u) << e;
}

TEST(JobSpec, KeysOfAnotherMethodAreRejected) {
  std::string e = ErrorOf(Minimal("  tau: [4, 0.05]\n"));
  EXPECT_EQ(e.rfind("method.tau: not a key of method proxsparse", 0), 0u) << e;
  EXPECT_NE(e.find("maskllm"), std::string::npos) << e;
  e = ErrorOf("model: m\nmethod: {name: wanda, lambda1: 1}\ncalibration: {path: c}\n");
  EXPECT_EQ(e.rfind("method.lambda1: not a key of method wanda", 0), 0u) << e;
  e = ErrorOf("model: m\nmethod: {name: magnitude, lr: 1}\n");
  EXPECT_EQ(e.rfind("method.lr: not a key of method magnitude", 0), 0u) << e;
}

TEST(JobSpec, BadValuesNameTheKey) {
  struct Case {
    std::string text, prefix;
  };
  std::vector<Case> cases = {
      {Minimal("  lambda1: -1\n"), "method.lambda1: must be >= 0"},
      {Minimal("  lambda1: abc\n"), "method.lambda1: must be a number"},
      {Minimal("  lambda1: .nan\n"), "method.lambda1: must be a number"},
      {Minimal("  lr: 0\n"), "method.lr: must be > 0"},
      {Minimal("  epsilon: 0\n"), "method.epsilon: must be > 0"},
      {Minimal("  warmup_ratio: 1.5\n"), "method.warmup_ratio: must be <= 1"},
      {Minimal("  epochs: 0\n"), "method.epochs: must be >= 1"},
      {Minimal("  epochs: 1.5\n"), "method.epochs: must be an integer"},
      {Minimal("  batch_size: [1]\n"), "method.batch_size: must be an integer"},
      {Minimal("  trainable: some\n"), "method.trainable: 'some' is not one of targets | all"},
      {Minimal("  hard: yes\n"), "method.hard: 'yes' is not one of"},
      {Minimal("  master_dtype: fp16\n"), "method.master_dtype:"},
      {Minimal("  overlap_update: maybe\n"), "method.overlap_update: must be true or false"},
      {Minimal("", "pattern: \"4:4\"\n"), "pattern: N must satisfy 0 < N < M"},
      {Minimal("", "pattern: \"2-4\"\n"), "pattern: '2-4' is not N:M"},
      {Minimal("", "pattern: \"2:x\"\n"), "pattern: '2:x' is not N:M with whole numbers"},
      {Minimal("", "pattern: \"1:64\"\n"), "pattern: M must be between 2 and 16"},
      {Minimal("", "seed: -3\n"), "seed: must be >= 0"},
      {Minimal("", "device: tpu\n"), "device: 'tpu' is not one of cpu | cuda"},
      {Minimal("", "dtype: fp8\n"), "dtype:"},
      {Minimal("", "log_every: 0\n"), "log_every: must be >= 1"},
      {Minimal("", "checkpoint: {every_steps: -1}\n"), "checkpoint.every_steps: must be >= 0"},
      {Minimal("", "masked_update: {steps: 10, lr: -1}\n"), "masked_update.lr: must be > 0"},
      {Minimal("", "evaluation: {ctx: 0}\n"), "evaluation.ctx: must be >= 1"},
      {Minimal("", "evaluation: {ppl: [a, '']}\n"), "evaluation.ppl[1]: must be a non-empty path"},
      {Minimal("", "evaluation: {ppl: {a: 1}}\n"), "evaluation.ppl: must be a path or a list"},
      {Minimal("", "resources: {ranks: 0}\n"), "resources.ranks: must be >= 1"},
      {Minimal("", "resources: {memory_gb: 0}\n"), "resources.memory_gb: must be > 0"},
      {Minimal("", "resources: {gpus_per_rank: 1}\n"), "resources.gpus_per_rank: must be 0 when"},
      {Minimal("", "device: cuda\n"), "resources.gpus_per_rank: must be >= 1 when device is cuda"},
      {Minimal("", "resources: 3\n"), "resources: must be a mapping"},
      {"model: m\nmethod: {name: maskllm, tau: [1]}\ncalibration: {path: c}\n",
       "method.tau: must be a list of two numbers"},
      {"model: m\nmethod: {name: maskllm, kappa: [1, -2]}\ncalibration: {path: c}\n",
       "method.kappa[1]: must be > 0"},
      {"model: m\nmethod: {name: maskllm, prior: random}\ncalibration: {path: c}\n",
       "method.prior: 'random' is not one of"},
      {"model: m\nmethod: {name: sparsegpt, blocksize: 0}\ncalibration: {path: c}\n",
       "method.blocksize: must be >= 1"},
      {"model: m\nmethod: {name: pruneit}\n", "method.name: 'pruneit' is not one of"},
      {"model: m\nmethod: {lr: 1}\n", "method.name: missing"},
      {"model: m\n", "method: missing"},
      {"method: {name: magnitude}\n", "model: missing"},
      {"model: m\nmethod: {name: wanda}\n", "calibration.path: missing"},
      {"model: m\nmethod: {name: magnitude}\nmasked_update: {steps: 5}\n",
       "calibration.path: missing"},
      {"", "(top level): the job file is empty"},
      {"- a\n- b\n", "(top level): must be a mapping"},
  };
  for (const auto& c : cases) {
    std::string e = ErrorOf(c.text);
    EXPECT_EQ(e.rfind(c.prefix, 0), 0u) << "input:\n" << c.text << "\nerror: " << e;
  }
}

TEST(JobSpec, InvalidYamlSaysWhere) {
  std::string e = ErrorOf("model: m\nmethod: [unclosed\n");
  EXPECT_NE(e.find("job.yaml: not valid YAML: line"), std::string::npos) << e;
}

TEST(JobSpec, NMPatterns) {
  EXPECT_EQ(ParseNMPattern("1:4"), (NMPattern{1, 4}));
  EXPECT_EQ(ParseNMPattern("4:8"), (NMPattern{4, 8}));
  EXPECT_THROW(ParseNMPattern("0:4"), Error);
  EXPECT_THROW(ParseNMPattern(":4"), Error);
  EXPECT_THROW(ParseNMPattern("2:4:8"), Error);
  EXPECT_THROW(ParseNMPattern("-1:4"), Error);
}

TEST(JobSpec, RoundTripsThroughYamlForEveryMethod) {
  std::vector<std::string> texts = {
      kDocExample,
      "name: w\nmodel: m\npattern: \"1:4\"\nmethod: {name: wanda}\ncalibration: {path: c, "
      "sampling: window, format: tokens-u16}\nevaluation: {ppl: e.txt, tasks: [t.jsonl]}\n",
      "model: m\nmethod: {name: sparsegpt, blocksize: 64, percdamp: 0.05}\ncalibration: {path: "
      "c}\nmasked_update: {steps: 20, lr: 3e-6}\n",
      "model: m\nmethod: {name: magnitude}\n",
      "model: m\nmethod: {name: maskllm, tau: [3, 0.1], kappa: [50, 600], prior: wanda, "
      "prior_alpha: 2.5, sparse_reg: 0, lr: 0.05, max_steps: 7}\ncalibration: {path: c}\n"
      "device: cuda\nresources: {ranks: 4, gpus_per_rank: 1, memory_gb: 80.5}\nseed: 12345\n",
      "model: m\nmethod: {name: proxsparse, lambda1: 0.123456789012345, hard: snap, trainable: "
      "all, master_dtype: bf16}\ncalibration: {path: c}\n",
      "model: m\nmethod: {name: proxsparse, overlap_update: true, grad_accum: 2}\n"
      "calibration: {path: c}\n",
  };
  for (const auto& t : texts) {
    JobSpec a = ParseJobSpec(t, "/base/dir");
    std::string y = JobSpecToYaml(a);
    JobSpec b = ParseJobSpec(y, "/somewhere/else");
    EXPECT_TRUE(a == b) << t << "\n---\n" << y;
    EXPECT_EQ(JobSpecHash(a), JobSpecHash(b));
    EXPECT_EQ(JobSpecToYaml(b), y);
  }
}

// overlap_update: parsed, off by default, listed in the canonical YAML only when on (jobs written
// before the key existed keep their hash), and not a key of the one-shot methods.
TEST(JobSpec, OverlapUpdateKey) {
  JobSpec off =
      ParseJobSpec("model: m\nmethod: {name: proxsparse}\ncalibration: {path: c}\n", "/d");
  EXPECT_FALSE(off.method.overlap_update);
  EXPECT_EQ(JobSpecToYaml(off).find("overlap_update"), std::string::npos);
  JobSpec explicit_off = ParseJobSpec(
      "model: m\nmethod: {name: proxsparse, overlap_update: false}\ncalibration: {path: c}\n",
      "/d");
  EXPECT_EQ(JobSpecHash(off), JobSpecHash(explicit_off));
  JobSpec on = ParseJobSpec(
      "model: m\nmethod: {name: maskllm, overlap_update: yes}\ncalibration: {path: c}\n", "/d");
  EXPECT_TRUE(on.method.overlap_update);
  EXPECT_NE(JobSpecToYaml(on).find("overlap_update: true"), std::string::npos);
  EXPECT_THROW(ParseJobSpec("model: m\nmethod: {name: wanda, overlap_update: true}\n"
                            "calibration: {path: c}\n",
                            "/d"),
               Error);
}

// reconstruct and evaluation.baselines: off/empty by default and then absent from the canonical
// YAML (older jobs keep their hash); round-trip; bad values name the key; both need calibration
// data (magnitude as a baseline does not).
TEST(JobSpec, ReconstructAndBaselinesKeys) {
  JobSpec plain =
      ParseJobSpec("model: m\nmethod: {name: proxsparse}\ncalibration: {path: c}\n", "/d");
  EXPECT_EQ(plain.reconstruct, "none");
  EXPECT_TRUE(plain.evaluation.baselines.empty());
  EXPECT_EQ(JobSpecToYaml(plain).find("reconstruct"), std::string::npos);
  EXPECT_EQ(JobSpecToYaml(plain).find("baselines"), std::string::npos);
  JobSpec explicit_off = ParseJobSpec(
      "model: m\nmethod: {name: proxsparse}\ncalibration: {path: c}\nreconstruct: none\n"
      "evaluation: {baselines: []}\n",
      "/d");
  EXPECT_EQ(JobSpecHash(plain), JobSpecHash(explicit_off));

  JobSpec on = ParseJobSpec(
      "model: m\nmethod: {name: wanda}\ncalibration: {path: c}\nreconstruct: obs\n"
      "evaluation: {baselines: [magnitude, wanda]}\n",
      "/d");
  EXPECT_EQ(on.reconstruct, "obs");
  EXPECT_EQ(on.evaluation.baselines, (std::vector<std::string>{"magnitude", "wanda"}));
  JobSpec back = ParseJobSpec(JobSpecToYaml(on), "/x");
  EXPECT_TRUE(back == on);
  EXPECT_NE(
      JobSpecHash(on),
      JobSpecHash(ParseJobSpec("model: m\nmethod: {name: wanda}\ncalibration: {path: c}\n", "/d")));

  auto starts = [](const std::string& text, const std::string& prefix) {
    const std::string e = ErrorOf(text);
    EXPECT_EQ(e.rfind(prefix, 0), 0u) << e;
  };
  starts(
      "model: m\nmethod: {name: wanda}\ncalibration: {path: c}\n"
      "reconstruct: yes\n",
      "reconstruct: 'yes' is not one of none | obs | lsq");
  starts(
      "model: m\nmethod: {name: sparsegpt}\ncalibration: {path: c}\n"
      "reconstruct: obs\n",
      "reconstruct: method sparsegpt already re-solves");
  // lsq re-solves SparseGPT's mask exactly (a different update from SparseGPT's own).
  EXPECT_EQ(ParseJobSpec("model: m\nmethod: {name: sparsegpt}\ncalibration: {path: c}\n"
                         "reconstruct: lsq\n",
                         "/d")
                .reconstruct,
            "lsq");
  JobSpec lsq = ParseJobSpec(
      "model: m\nmethod: {name: proxsparse}\ncalibration: {path: c}\nreconstruct: lsq\n", "/d");
  EXPECT_EQ(lsq.reconstruct, "lsq");
  EXPECT_TRUE(ParseJobSpec(JobSpecToYaml(lsq), "/x") == lsq);
  EXPECT_NE(JobSpecHash(lsq), JobSpecHash(plain));
  starts("model: m\nmethod: {name: magnitude}\nreconstruct: obs\n",
         "calibration.path: missing (reconstruct: obs needs");
  starts("model: m\nmethod: {name: magnitude}\nevaluation: {baselines: [wanda]}\n",
         "calibration.path: missing (evaluation.baselines: wanda needs");
  EXPECT_NO_THROW(ParseJobSpec(
      "model: m\nmethod: {name: magnitude}\nevaluation: {baselines: [magnitude]}\n", "/d"));
  starts(
      "model: m\nmethod: {name: magnitude}\n"
      "evaluation: {baselines: [magnitude, gpt]}\n",
      "evaluation.baselines[1]: 'gpt' is not one of");
  starts(
      "model: m\nmethod: {name: magnitude}\n"
      "evaluation: {baselines: [magnitude, magnitude]}\n",
      "evaluation.baselines[1]: 'magnitude' is listed twice");
  starts("model: m\nmethod: {name: magnitude}\nevaluation: {baselines: wanda}\n",
         "evaluation.baselines: must be a list");
}

TEST(JobSpec, HashIgnoresSpellingButNotContent) {
  JobSpec a = ParseJobSpec("model: m\nmethod: {name: magnitude}\n", "/d");
  JobSpec b = ParseJobSpec("# comment\nmethod:\n  name: magnitude\nmodel: /d/./m\nseed: 0\n", "/x");
  EXPECT_EQ(JobSpecHash(a), JobSpecHash(b));
  JobSpec c = ParseJobSpec("model: m\nmethod: {name: magnitude}\nseed: 1\n", "/d");
  EXPECT_NE(JobSpecHash(a), JobSpecHash(c));
  EXPECT_EQ(JobSpecHash(a).size(), 64u);
}

class JobInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteCheckableInputs(dir_);
    WriteFileAtomic(dir_ / "eval.txt", "world");
    WriteFileAtomic(dir_ / "job.yaml",
                    "model: model\nmethod: {name: wanda}\ncalibration: {path: calib.txt}\n"
                    "evaluation: {ppl: [eval.txt]}\n");
  }
  std::string ErrorOfInputs(const JobSpec& s) {
    return testing::ErrorOf([&] { CheckJobInputs(s); });
  }
  testing::TempDir tmp_{"jobspec"};
  const fs::path& dir_ = tmp_.path();
};

TEST_F(JobInputsTest, AcceptsAGoodJob) {
  JobSpec s = LoadJobSpec(dir_ / "job.yaml");
  EXPECT_EQ(s.model, dir_ / "model");
  EXPECT_EQ(ErrorOfInputs(s), "");
}

TEST_F(JobInputsTest, NamesTheMissingInput) {
  JobSpec s = LoadJobSpec(dir_ / "job.yaml");
  s.calibration.path = dir_ / "nope.txt";
  EXPECT_EQ(ErrorOfInputs(s).rfind("calibration.path: ", 0), 0u);
  s = LoadJobSpec(dir_ / "job.yaml");
  s.evaluation.ppl.push_back(dir_);
  EXPECT_EQ(ErrorOfInputs(s).rfind("evaluation.ppl[1]: ", 0), 0u) << ErrorOfInputs(s);
  s = LoadJobSpec(dir_ / "job.yaml");
  s.model = dir_ / "nomodel";
  EXPECT_EQ(ErrorOfInputs(s).rfind("model: ", 0), 0u);
  fs::remove(dir_ / "model/model.safetensors");
  s = LoadJobSpec(dir_ / "job.yaml");
  EXPECT_NE(ErrorOfInputs(s).find("no *.safetensors"), std::string::npos);
}

TEST_F(JobInputsTest, TargetDimsMustSplitIntoGroups) {
  JobSpec s = LoadJobSpec(dir_ / "job.yaml");
  s.pattern = {2, 3};
  std::string e = ErrorOfInputs(s);
  EXPECT_EQ(e.rfind("pattern: hidden_size = 64", 0), 0u) << e;
  WriteFileAtomic(dir_ / "model/config.json", "{not json");
  EXPECT_NE(ErrorOfInputs(LoadJobSpec(dir_ / "job.yaml")).find("not valid JSON"),
            std::string::npos);
}

TEST_F(JobInputsTest, MissingJobFile) { EXPECT_THROW(LoadJobSpec(dir_ / "missing.yaml"), Error); }

TEST(JobSpec, SharedDataDefaultModelPasses) {
  fs::path data = PS_SHARED_DATA;
  if (!fs::exists(data / "codelm-19m/config.json")) GTEST_SKIP() << "no " << data;
  JobSpec s = ParseJobSpec(
      "model: codelm-19m\nmethod: {name: proxsparse}\n"
      "calibration: {path: code-calib.jsonl.gz}\n"
      "evaluation: {ppl: code-eval.txt}\n",
      data);
  EXPECT_NO_THROW(CheckJobInputs(s));
}

}  // namespace
}  // namespace ps

namespace ps {
namespace {

// Every ready-made job file in configs/ follows the contract.
TEST(JobSpec, EveryShippedConfigParses) {
  std::filesystem::path dir = std::filesystem::path(PS_SOURCE_DIR) / "configs";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "no configs/";
  int n = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++n;
    EXPECT_NO_THROW(LoadJobSpec(entry.path())) << entry.path();
    try {
      JobSpec s = LoadJobSpec(entry.path());
      EXPECT_TRUE(ParseJobSpec(JobSpecToYaml(s), "/") == s) << entry.path();
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
    }
  }
  EXPECT_GT(n, 0);
}

}  // namespace
}  // namespace ps

// TrainOptions::overlap_update on one rank: AdamW and the ProxSparse hooks run tensor by tensor
// inside the last backward pass, yet give bit-identical weights and masks to the serial path
// (every operation is the same, per tensor); a non-finite loss still stops the run before any
// weight changes; hooks that cannot work per tensor fall back to the serial path.
#include <gtest/gtest.h>

#include <algorithm>

#include "common/error.h"
#include "tests/worker/engine/overlap_update_fixture.h"

namespace ps {
namespace {

using testing::OverlapCase;
using testing::OverlapRun;
using testing::RunOverlapCase;

void ExpectSame(const OverlapRun& a, const OverlapRun& b, const std::string& what) {
  ASSERT_EQ(a.weights.size(), b.weights.size());
  for (size_t i = 0; i < a.weights.size(); ++i) {
    EXPECT_TRUE(torch::equal(a.weights[i], b.weights[i]))
        << what << ": weight " << i << " max diff "
        << (a.weights[i] - b.weights[i]).abs().max().item<float>();
    EXPECT_TRUE(torch::equal(a.masks[i], b.masks[i])) << what << ": mask " << i;
  }
  EXPECT_EQ(a.final_loss, b.final_loss) << what;
}

TEST(OverlapUpdate, BitIdenticalToSerialOnOneRank) {
  auto comm = MakeLocalCommunicator();
  for (int accum : {1, 2}) {
    for (double lambda2 : {0.0, 0.5}) {
      OverlapCase c;
      c.grad_accum = accum;
      c.lambda2 = lambda2;
      const OverlapRun serial = RunOverlapCase(*comm, c);
      c.overlap_update = true;
      const OverlapRun over = RunOverlapCase(*comm, c);
      const std::string what =
          "accum " + std::to_string(accum) + " lambda2 " + std::to_string(lambda2);
      ExpectSame(serial, over, what);
      // Every target was updated inside backward (the flag did something), none in serial.
      EXPECT_EQ(over.updated_during_backward, over.owned) << what;
      EXPECT_GT(over.owned, 0);
      EXPECT_EQ(serial.updated_during_backward, 0) << what;
      // The weights moved (the comparison is not vacuous).
      auto init = testing::TinyModel(7, torch::kFloat32);
      EXPECT_FALSE(torch::equal(init->TargetLinears()[0]->weight.detach(), over.weights[0]))
          << what;
    }
  }
}

TEST(OverlapUpdate, Bf16ModelWithFp32MasterAndHardProjection) {
  auto comm = MakeLocalCommunicator();
  OverlapCase c;
  c.dtype = torch::kBFloat16;
  c.hard = HardMode::kProject;
  c.grad_accum = 2;
  const OverlapRun serial = RunOverlapCase(*comm, c);
  c.overlap_update = true;
  const OverlapRun over = RunOverlapCase(*comm, c);
  ExpectSame(serial, over, "bf16 project");
  EXPECT_EQ(over.updated_during_backward, over.owned);
  // hard = project: every group of every target is 2:4 after each step.
  for (const auto& w : over.weights)
    EXPECT_TRUE(torch::equal(w, w * TopNMaskUnchecked(w.abs(), NMPattern{2, 4})));
}

TEST(OverlapUpdate, HooksWithoutPerTensorFormFallBackToSerial) {
  auto comm = MakeLocalCommunicator();
  OverlapCase c;
  c.lambda2 = 0.5;
  const OverlapRun serial = RunOverlapCase(*comm, c);
  c.overlap_update = true;
  c.per_tensor_hooks = false;
  const OverlapRun fallback = RunOverlapCase(*comm, c);
  ExpectSame(serial, fallback, "fallback");
  EXPECT_EQ(fallback.updated_during_backward, 0);
  EXPECT_TRUE(std::any_of(fallback.logs.begin(), fallback.logs.end(), [](const std::string& l) {
    return l.find("serial path") != std::string::npos;
  }));
}

// A NaN in a (frozen) norm weight makes the first loss NaN: the overlapped run must stop with the
// usual message before its backward pass changed any weight.
TEST(OverlapUpdate, NonFiniteLossStopsBeforeAnyWeightChanges) {
  auto comm = MakeLocalCommunicator();
  auto model = testing::TinyModel(7, torch::kFloat32);
  auto [params, is_target] = testing::TrainTargetsOnly(*model);
  {
    torch::NoGradGuard no_grad;
    for (auto& np : model->named_parameters())
      if (np.key().find("norm") != std::string::npos) np.value().fill_(NAN);
  }
  std::vector<torch::Tensor> before;
  for (auto& t : params) before.push_back(t.param.detach().clone());
  ProxSparseHooks hooks(ProxSparseSettings{NMPattern{2, 4}, 0.05, 0.0, 0.1, HardMode::kNone},
                        is_target, [](const std::string&) { return torch::Tensor(); });
  TrainOptions o;
  o.total_steps = 2;
  o.seqs_per_step = 2;
  o.lr = 1e-2;
  o.overlap_update = true;
  testing::LogSink sink;
  try {
    TrainLoop(*model, params, testing::TinySamples(4, 10, 3), hooks, *comm, sink, o);
    FAIL() << "no error on a NaN loss";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite loss"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("at step 1"), std::string::npos) << e.what();
  }
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::equal(before[i], params[i].param.detach())) << params[i].name;
}

}  // namespace
}  // namespace ps

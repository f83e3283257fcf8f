#include "worker/methods/lr_schedule.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace ps {
namespace {

TEST(LinearWarmupSchedule, MatchesTransformersLinearSchedule) {
  // transformers: warmup = ceil(0.1 * 100) = 10; lr_lambda(s) = s/10 for s < 10, then
  // (100 - s) / 90.
  LinearWarmupSchedule s(1e-4, 100, 0.1);
  EXPECT_EQ(s.warmup_steps(), 10);
  EXPECT_DOUBLE_EQ(s.Factor(0), 0.0);
  EXPECT_DOUBLE_EQ(s.Factor(5), 0.5);
  EXPECT_DOUBLE_EQ(s.Factor(10), 1.0);
  EXPECT_DOUBLE_EQ(s.Factor(55), 0.5);
  EXPECT_DOUBLE_EQ(s.Factor(100), 0.0);
  EXPECT_DOUBLE_EQ(s.Factor(150), 0.0);
  EXPECT_DOUBLE_EQ(s.LearningRate(10), 1e-4);
  for (int64_t k = 1; k < 100; ++k) {  // monotone up, then down
    if (k <= 10)
      EXPECT_GT(s.Factor(k), s.Factor(k - 1));
    else
      EXPECT_LT(s.Factor(k), s.Factor(k - 1));
  }
}

TEST(LinearWarmupSchedule, EdgeCases) {
  LinearWarmupSchedule none(2.0, 4, 0.0);  // no warmup: 1, .75, .5, .25
  EXPECT_EQ(none.warmup_steps(), 0);
  EXPECT_DOUBLE_EQ(none.LearningRate(0), 2.0);
  EXPECT_DOUBLE_EQ(none.LearningRate(3), 0.5);
  LinearWarmupSchedule one(1.0, 1, 0.1);  // ceil(0.1) = 1 warmup step: lr 0 then done
  EXPECT_EQ(one.warmup_steps(), 1);
  EXPECT_DOUBLE_EQ(one.Factor(0), 0.0);
  LinearWarmupSchedule all(1.0, 10, 1.0);
  EXPECT_DOUBLE_EQ(all.Factor(9), 0.9);
  EXPECT_DOUBLE_EQ(all.Factor(10), 0.0);
  // Float rounding as in Python: 100 * 0.55 = 55.00000000000001 -> ceil 56.
  EXPECT_EQ(LinearWarmupSchedule(1.0, 100, 0.55).warmup_steps(), 56);
  EXPECT_EQ(LinearWarmupSchedule(1.0, 30, 0.1).warmup_steps(), 3);
  EXPECT_THROW(LinearWarmupSchedule(1.0, 0, 0.1), Error);
  EXPECT_THROW(LinearWarmupSchedule(1.0, 10, 1.5), Error);
  EXPECT_THROW(LinearWarmupSchedule(-1.0, 10, 0.1), Error);
  EXPECT_THROW(none.Factor(-1), Error);
}

}  // namespace
}  // namespace ps

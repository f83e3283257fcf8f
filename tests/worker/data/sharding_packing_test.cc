#include <gtest/gtest.h>

#include "common/error.h"
#include "worker/data/packing.h"
#include "worker/data/sharding.h"

namespace ps {
namespace {

TEST(Sharding, SharesCoverEachBatchOnceAndBalance) {
  for (size_t n : {0u, 1u, 7u, 16u, 401u}) {
    for (size_t b : {1u, 3u, 8u}) {
      for (bool drop : {false, true}) {
        BatchSchedule s{n, b, drop};
        size_t steps = NumSteps(s);
        EXPECT_EQ(steps, drop ? n / b : (n + b - 1) / b);
        std::vector<int> hits(n, 0);
        for (size_t step = 0; step < steps; ++step) {
          auto batch = GlobalBatch(s, step);
          for (int world : {1, 2, 3, 5}) {
            std::vector<size_t> joined;
            size_t lo = SIZE_MAX, hi = 0;
            for (int r = 0; r < world; ++r) {
              auto share = RankShare(s, step, r, world);
              lo = std::min(lo, share.size());
              hi = std::max(hi, share.size());
              joined.insert(joined.end(), share.begin(), share.end());
            }
            EXPECT_EQ(joined, batch);  // contiguous shares in rank order rebuild the batch
            EXPECT_LE(hi - lo, 1u);
          }
          for (size_t i : batch) ++hits[i];
        }
        for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i], drop && i >= steps * b ? 0 : 1);
      }
    }
  }
}

TEST(Sharding, ExampleAndErrors) {
  BatchSchedule s{10, 4, false};
  EXPECT_EQ(GlobalBatch(s, 2), (std::vector<size_t>{8, 9}));
  EXPECT_EQ(RankShare(s, 0, 0, 2), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(RankShare(s, 0, 1, 2), (std::vector<size_t>{2, 3}));
  EXPECT_EQ(RankShare(s, 2, 0, 3), (std::vector<size_t>{}));
  EXPECT_EQ(RankShare(s, 2, 1, 3), (std::vector<size_t>{8}));
  EXPECT_EQ(RankShare(s, 2, 2, 3), (std::vector<size_t>{9}));
  EXPECT_THROW(GlobalBatch(s, 3), Error);
  EXPECT_THROW(RankShare(s, 0, 2, 2), Error);
  EXPECT_THROW(RankShare(s, 0, -1, 2), Error);
  EXPECT_THROW(NumSteps(BatchSchedule{10, 0, false}), Error);
}

TEST(Packing, WindowsAndConcatenation) {
  auto w = EvalWindows(1105, 512);
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[1].begin, 512u);
  EXPECT_EQ(w[1].length, 512u);
  auto p = EvalWindows(1105, 512, true);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[2].begin, 1024u);
  EXPECT_EQ(p[2].length, 81u);
  EXPECT_EQ(EvalWindows(1024, 512, true).size(), 2u);
  EXPECT_TRUE(EvalWindows(100, 512).empty());
  EXPECT_THROW(EvalWindows(10, 0), Error);
  EXPECT_EQ(ConcatenateDocuments({{1, 2}, {}, {3}}), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(ConcatenateDocuments({{1, 2}, {}, {3}}, 0), (std::vector<int32_t>{1, 2, 0, 0, 3}));
}

TEST(Packing, SplitDocumentsAtSeparator) {
  using Docs = std::vector<std::vector<int32_t>>;
  EXPECT_EQ(SplitDocuments({9, 1, 2, 9, 3, 9, 9, 4}, 9), (Docs{{9, 1, 2}, {9, 3}, {9}, {9, 4}}));
  EXPECT_EQ(SplitDocuments({1, 2, 9, 3}, 9), (Docs{{1, 2}, {9, 3}}));
  EXPECT_EQ(SplitDocuments({}, 9), Docs{});
  EXPECT_EQ(SplitDocuments({9}, 9), (Docs{{9}}));
  EXPECT_EQ(SplitDocuments({1, 2}, 9), (Docs{{1, 2}}));
}

}  // namespace
}  // namespace ps

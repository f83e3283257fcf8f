#include "worker/prox/nm_pattern.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace ps {
namespace {

TEST(NMPattern, Parses) {
  EXPECT_EQ(ParseNMPattern("2:4"), (NMPattern{2, 4}));
  EXPECT_EQ(ParseNMPattern("1:4"), (NMPattern{1, 4}));
  EXPECT_EQ(ParseNMPattern("4:8").ToString(), "4:8");
}

TEST(NMPattern, RejectsBadText) {
  for (const char* bad : {"", "2", "2:", ":4", "2:4:1", "a:4", "4:4", "0:4", "5:4", "2:9", " 2:4"})
    EXPECT_THROW(ParseNMPattern(bad), Error) << bad;
}

}  // namespace
}  // namespace ps

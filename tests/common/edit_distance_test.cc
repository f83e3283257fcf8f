#include "common/edit_distance.h"

#include <gtest/gtest.h>

namespace ps {
namespace {

TEST(EditDistance, CountsInsertionsDeletionsAndSubstitutions) {
  EXPECT_EQ(EditDistance("", ""), 0u);
  EXPECT_EQ(EditDistance("", "list"), 4u);
  EXPECT_EQ(EditDistance("list", ""), 4u);
  EXPECT_EQ(EditDistance("list", "list"), 0u);
  EXPECT_EQ(EditDistance("lsit", "list"), 2u);  // a swap is two substitutions
  EXPECT_EQ(EditDistance("sumbit", "submit"), 2u);
  EXPECT_EQ(EditDistance("cancle", "cancel"), 2u);
  EXPECT_EQ(EditDistance("get", "gets"), 1u);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3u);
  EXPECT_EQ(EditDistance("abc", "xyz"), 3u);
  EXPECT_EQ(EditDistance("flaw", "lawn"), EditDistance("lawn", "flaw"));  // symmetric
}

}  // namespace
}  // namespace ps

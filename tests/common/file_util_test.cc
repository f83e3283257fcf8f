// RemoveTree: the project's recursive removal (std::filesystem::remove_all is avoided, see
// common/file_util.h).
#include "common/file_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace ps {
namespace {

namespace fs = std::filesystem;

fs::path FreshDir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / (name + "." + std::to_string(::getpid()));
  fs::remove_all(d);  // test setup only (Debian's libstdc++ here)
  fs::create_directories(d);
  return d;
}

void Touch(const fs::path& p) { std::ofstream(p) << "x"; }

TEST(RemoveTree, RemovesNestedDirectoriesAndFiles) {
  const fs::path root = FreshDir("ps_remove_tree");
  fs::create_directories(root / "a" / "b" / "c");
  Touch(root / "f");
  Touch(root / "a" / "g");
  Touch(root / "a" / "b" / "c" / "h");
  EXPECT_FALSE(RemoveTree(root));
  EXPECT_FALSE(fs::exists(root));
}

TEST(RemoveTree, MissingPathIsNotAnErrorAndAFileIsRemoved) {
  const fs::path root = FreshDir("ps_remove_tree_file");
  EXPECT_FALSE(RemoveTree(root / "missing"));
  Touch(root / "f");
  EXPECT_FALSE(RemoveTree(root / "f"));
  EXPECT_FALSE(fs::exists(root / "f"));
  EXPECT_TRUE(fs::exists(root));
  fs::remove_all(root);
}

TEST(RemoveTree, SymbolicLinksAreRemovedNotFollowed) {
  const fs::path keep = FreshDir("ps_remove_tree_keep");
  Touch(keep / "precious");
  const fs::path root = FreshDir("ps_remove_tree_links");
  fs::create_directory_symlink(keep, root / "link");
  EXPECT_FALSE(RemoveTree(root));
  EXPECT_FALSE(fs::exists(root));
  EXPECT_TRUE(fs::exists(keep / "precious"));
  fs::remove_all(keep);
}

TEST(RemoveTree, ReportsAnErrorItCannotGetPast) {
  // A path through a regular file cannot be inspected: ENOTDIR, not success.
  const fs::path root = FreshDir("ps_remove_tree_err");
  Touch(root / "f");
  const std::error_code ec = RemoveTree(root / "f" / "below");
  EXPECT_TRUE(ec);
  fs::remove_all(root);
}

}  // namespace
}  // namespace ps

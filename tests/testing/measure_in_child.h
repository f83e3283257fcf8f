// Memory tests measure peak RSS in a fresh process, so that what the parent allocated before
// (the model it saved, gtest's own state) is not in the figure: this test binary runs again with
// only the child test selected and `env` set; the child writes two integers (RSS before and peak
// after, in kB) to `out`.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace ps::testing {

inline std::array<int64_t, 2> MeasureInChild(
    const std::string& gtest_filter, const std::vector<std::pair<std::string, std::string>>& env,
    const std::filesystem::path& out) {
  const std::string exe = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::string filter = "--gtest_filter=" + gtest_filter;
  const pid_t pid = ::fork();
  if (pid < 0) throw Error("fork failed");
  if (pid == 0) {
    for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    ::execl(exe.c_str(), exe.c_str(), filter.c_str(), nullptr);
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("child " + gtest_filter + " failed");
  std::array<int64_t, 2> result = {0, 0};
  std::ifstream(out) >> result[0] >> result[1];
  return result;
}

}  // namespace ps::testing

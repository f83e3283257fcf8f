// pstool and psworker command lines: CLI11 --help per command, typos, and the documented exit
// codes (docs/exit-codes.md): 0 ok, 2 bad command line.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace {

struct Result {
  int rc;
  std::string out;  // stdout and stderr together
};

Result RunTool(const std::string& tool, const std::string& args) {
  std::string cmd = std::string(PS_BINARY_DIR) + "/worker/tools/" + tool + " " + args + " 2>&1";
  Result r{-1, ""};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) r.out.append(buf.data(), n);
  int st = pclose(p);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

TEST(PstoolCli, HelpPerCommand) {
  Result r = RunTool("pstool", "--help");
  EXPECT_EQ(r.rc, 0);
  for (const char* c : {"eval", "generate", "pack", "unpack", "prox", "inspect", "convert"})
    EXPECT_NE(r.out.find(c), std::string::npos) << c << "\n" << r.out;
  r = RunTool("pstool", "eval --help");
  EXPECT_EQ(r.rc, 0);
  for (const char* f : {"--model", "--ppl", "--task", "--ctx", "--max-windows", "--device"})
    EXPECT_NE(r.out.find(f), std::string::npos) << f << "\n" << r.out;
  r = RunTool("pstool", "pack --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("sparse-24-bitmask"), std::string::npos) << r.out;
  r = RunTool("pstool", "prox --help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.out.find("--lambda"), std::string::npos) << r.out;
  EXPECT_EQ(RunTool("pstool", "help").rc, 0);
}

TEST(PstoolCli, BadCommandLinesExit2) {
  Result r = RunTool("pstool", "evl --model x");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.out.find("did you mean \"eval\"?"), std::string::npos) << r.out;
  EXPECT_EQ(RunTool("pstool", "").rc, 2);
  EXPECT_EQ(RunTool("pstool", "eval --bogus").rc, 2);
  EXPECT_EQ(RunTool("pstool", "generate --model m").rc, 2);  // --prompt is required
  EXPECT_EQ(RunTool("pstool", "prox --input a --output b --lambda abc").rc, 2);
  EXPECT_EQ(RunTool("pstool", "prox --input a --output b --lambda 1 --device tpu").rc, 2);
  EXPECT_EQ(RunTool("pstool", "eval --model m --max-windows 0").rc, 2);
  // A well-formed command that fails at work is 1, not 2.
  r = RunTool("pstool", "inspect --model /nonexistent/model");
  EXPECT_EQ(r.rc, 1) << r.out;
}

TEST(PsworkerCli, BadCommandLinesExit2) {
  EXPECT_EQ(RunTool("psworker", "--bogus").rc, 2);  // was CLI11's 109
  EXPECT_EQ(RunTool("psworker", "--help").rc, 0);
  EXPECT_EQ(RunTool("psworker", "").rc, 2);
}

}  // namespace

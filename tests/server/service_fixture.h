// The GoogleTest fixture of the process-level service tests: a temporary directory per test (kept
// when the test fails, for its logs), one psd in it, and submitting through psctl.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/server/service_harness.h"

namespace ps::test {

class ServiceFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override {
    psd_.reset();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }
  // A psd on `data` (default: DIR/psd) with `extra` flags.
  Psd& StartPsd(std::vector<std::string> extra = {}, int port = 0,
                std::filesystem::path data = {}) {
    psd_ = std::make_unique<Psd>(data.empty() ? dir_ / "psd" : data, std::move(extra), port);
    return *psd_;
  }
  // Submits and returns the job id.
  std::string Submit(const std::filesystem::path& job, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"submit", job.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    CmdResult r = psd_->Ctl(args);
    EXPECT_EQ(r.rc, 0) << r.err;
    std::string id = r.out.substr(0, r.out.find('\n'));
    EXPECT_EQ(id.size(), 7u) << r.out;
    return id;
  }
  std::filesystem::path dir_;
  std::unique_ptr<Psd> psd_;
};

}  // namespace ps::test

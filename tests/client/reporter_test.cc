// ps_reporter's pieces that need no server: token files and refusing to start without a job id
// or a reachable psd (the end-to-end paths are in tests/server/service_test.cc).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "client/channel.h"
#include "client/worker_reporter.h"
#include "common/error.h"
#include "common/file_util.h"

namespace ps {
namespace {

namespace fs = std::filesystem;

TEST(Reporter, TokenFilesAreTrimmedAndChecked) {
  fs::path p = fs::temp_directory_path() / ("ps_token_" + std::to_string(::getpid()));
  WriteFileAtomic(p, "  abc-123\n\n");
  EXPECT_EQ(ReadToken(p.string()), "abc-123");
  WriteFileAtomic(p, " \n");
  EXPECT_THROW(ReadToken(p.string()), Error);
  fs::remove(p);
  EXPECT_THROW(ReadToken(p.string()), Error);
  EXPECT_EQ(ReadToken(""), "");
}

TEST(Reporter, NeedsAJobIdAndAReachableCoordinator) {
  ReporterOptions o;
  o.connection.address = "127.0.0.1:1";  // nothing listens there
  EXPECT_THROW(WorkerReporter{o}, Error);
  o.job_id = "j000001";
  o.retry_for = std::chrono::milliseconds(300);
  try {
    WorkerReporter r(o);
    FAIL() << "registered with nobody";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot register job j000001 attempt 1"),
              std::string::npos)
        << e.what();
  }
}

TEST(Reporter, ContextsCarryTheToken) {
  auto ctx = MakeContext("tok", std::chrono::milliseconds(100), true);
  EXPECT_NE(ctx, nullptr);
  ConnectionOptions c;
  c.address = "127.0.0.1:1";
  c.tls_ca = "/nonexistent/ca.pem";
  EXPECT_THROW(MakeChannel(c), Error);
}

}  // namespace
}  // namespace ps

#include "worker/distributed/watchdog.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace ps {
namespace {

using namespace std::chrono_literals;

TEST(Watchdog, FiresWithoutHeartbeatAndSaysWhere) {
  std::atomic<int> fired{0};
  std::string message;
  {
    Watchdog w(0.2, [&](const std::string& m) {
      message = m;
      fired++;
    });
    w.Beat("step 7");
    const auto t0 = std::chrono::steady_clock::now();
    while (fired == 0 && std::chrono::steady_clock::now() - t0 < 5s)
      std::this_thread::sleep_for(10ms);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  }
  EXPECT_EQ(fired, 1);
  EXPECT_NE(message.find("step 7"), std::string::npos) << message;
}

TEST(Watchdog, HeartbeatsKeepItQuiet) {
  std::atomic<int> fired{0};
  {
    Watchdog w(0.3, [&](const std::string&) { fired++; });
    for (int i = 0; i < 20; ++i) {
      w.Beat("step " + std::to_string(i));
      std::this_thread::sleep_for(50ms);
    }
  }  // stopping joins the thread without firing
  EXPECT_EQ(fired, 0);
}

TEST(Watchdog, TimeoutFromEnvironment) {
  unsetenv("PS_RANK_TIMEOUT_S");
  EXPECT_EQ(RankTimeoutSeconds(1800), 1800);
  setenv("PS_RANK_TIMEOUT_S", "12.5", 1);
  EXPECT_EQ(RankTimeoutSeconds(1800), 12.5);
  for (const char* bad : {"abc", "-1", "0", "5s"}) {
    setenv("PS_RANK_TIMEOUT_S", bad, 1);
    EXPECT_ANY_THROW(RankTimeoutSeconds(1800)) << bad;
  }
  unsetenv("PS_RANK_TIMEOUT_S");
  EXPECT_ANY_THROW(Watchdog(0, [](const std::string&) {}));
}

}  // namespace
}  // namespace ps

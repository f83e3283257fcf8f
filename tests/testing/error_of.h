// Test helper: the message of the ps::Error that `f` throws, or "" when it throws none (any other
// exception propagates and fails the test), so a test can check what an error message says.
#pragma once

#include <functional>
#include <string>

#include "common/error.h"

namespace ps::testing {

inline std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace ps::testing

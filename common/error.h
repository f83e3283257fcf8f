// The project's one exception type: every user-facing failure (bad file, bad job, bad flag) is a
// ps::Error whose message says what and where, so tools print it and exit non-zero.
#pragma once

#include <stdexcept>
#include <string>

namespace ps {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ps

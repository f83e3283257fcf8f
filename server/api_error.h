// An error with the gRPC status code it should travel as; plain ps::Error maps to
// INVALID_ARGUMENT at the API boundary (it comes from validation of what the caller sent).
#pragma once

#include <grpcpp/support/status.h>

#include "common/error.h"

namespace ps {

class ApiError : public Error {
 public:
  ApiError(grpc::StatusCode code, const std::string& msg) : Error(msg), code_(code) {}
  grpc::StatusCode code() const { return code_; }

 private:
  grpc::StatusCode code_;
};

}  // namespace ps

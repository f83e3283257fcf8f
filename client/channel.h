// How psctl and workers reach psd: a gRPC channel (plaintext or TLS with a CA file) and the
// bearer token, read from a file, attached to every call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

namespace ps {

struct ConnectionOptions {
  std::string address = "localhost:50051";
  std::string token_file;  // bearer token; empty: none
  std::string tls_ca;      // PEM of the CA that signed psd's certificate; empty: plaintext
  std::string tls_cert;    // client certificate + key for mTLS (optional)
  std::string tls_key;
  std::string tls_server_name;  // override the name checked in psd's certificate
};

std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& opts);
// Reads and trims the token file; "" when none is configured. Throws ps::Error naming the file.
std::string ReadToken(const std::string& token_file);
// A context with the token (if any) and a deadline (`timeout` <= 0: none). wait_for_ready makes
// the call wait (until the deadline) for psd to come back instead of failing at once; a waiting
// call also drives the reconnection, which otherwise only gRPC's 5-second backup poller does.
std::unique_ptr<grpc::ClientContext> MakeContext(const std::string& token,
                                                 std::chrono::milliseconds timeout,
                                                 bool wait_for_ready = false);

}  // namespace ps

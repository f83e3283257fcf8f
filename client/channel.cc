#include "client/channel.h"

#include "common/error.h"
#include "common/file_util.h"

namespace ps {

std::string ReadToken(const std::string& token_file) {
  if (token_file.empty()) return "";
  std::string t;
  try {
    t = ReadFile(token_file);
  } catch (const Error& e) {
    throw Error("token file " + token_file + ": cannot read it (" + e.what() + ")");
  }
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.erase(0, 1);
  if (t.empty()) throw Error("token file " + token_file + " is empty");
  return t;
}

std::shared_ptr<grpc::Channel> MakeChannel(const ConnectionOptions& opts) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  // Reconnect quickly after psd restarts: gRPC's default backoff grows to minutes, long enough
  // for psd to declare a healthy worker dead for missing heartbeats.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  if (!opts.tls_server_name.empty()) args.SetSslTargetNameOverride(opts.tls_server_name);
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (opts.tls_ca.empty() && opts.tls_cert.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    auto read = [](const std::string& path, const char* what) {
      try {
        return ReadFile(path);
      } catch (const Error& e) {
        throw Error(std::string(what) + " " + path + ": cannot read it");
      }
    };
    if (!opts.tls_ca.empty()) ssl.pem_root_certs = read(opts.tls_ca, "TLS CA file");
    if (!opts.tls_cert.empty()) ssl.pem_cert_chain = read(opts.tls_cert, "TLS client certificate");
    if (!opts.tls_key.empty()) ssl.pem_private_key = read(opts.tls_key, "TLS client key");
    creds = grpc::SslCredentials(ssl);
  }
  return grpc::CreateCustomChannel(opts.address, creds, args);
}

std::unique_ptr<grpc::ClientContext> MakeContext(const std::string& token,
                                                 std::chrono::milliseconds timeout,
                                                 bool wait_for_ready) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_wait_for_ready(wait_for_ready);
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  if (timeout.count() > 0) ctx->set_deadline(std::chrono::system_clock::now() + timeout);
  return ctx;
}

}  // namespace ps

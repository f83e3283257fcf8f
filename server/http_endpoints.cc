#include "server/http_endpoints.h"

#include <sys/socket.h>

#include <chrono>

#include "common/error.h"

namespace ps {

std::pair<std::string, int> SplitHostPort(const std::string& addr, const char* flag) {
  size_t colon = addr.rfind(':');
  if (colon == std::string::npos)
    throw Error(std::string(flag) + ": expected HOST:PORT, got '" + addr + "'");
  std::string host = addr.substr(0, colon);
  if (host.size() > 1 && host.front() == '[') host = host.substr(1, host.size() - 2);
  std::string port = addr.substr(colon + 1);
  size_t used = 0;
  int p = -1;
  try {
    p = std::stoi(port, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != port.size() || port.empty() || p < 0 || p > 65535)
    throw Error(std::string(flag) + ": port must be a number from 0 to 65535, got '" + port + "'");
  return {host, p};
}

HttpEndpoints::HttpEndpoints(HttpOptions opts, std::function<std::string()> metrics)
    : opts_(std::move(opts)) {
  auto us = [](double s) { return std::chrono::microseconds(static_cast<int64_t>(s * 1e6)); };
  server_.set_read_timeout(us(opts_.read_timeout_s));
  server_.set_write_timeout(us(opts_.write_timeout_s));
  server_.set_keep_alive_timeout(static_cast<time_t>(std::max(1.0, opts_.keep_alive_s)));
  int workers = opts_.workers;
  server_.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  // Exclusive: SO_REUSEADDR only (restart across TIME_WAIT), never SO_REUSEPORT.
  server_.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_.Get("/metrics", [metrics](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
}

HttpEndpoints::~HttpEndpoints() { Stop(); }

std::string HttpEndpoints::Start() {
  auto [host, port] = SplitHostPort(opts_.listen, "--metrics-listen");
  if (port == 0) {
    port = server_.bind_to_any_port(host);
  } else if (!server_.bind_to_port(host, port)) {
    port = -1;
  }
  if (port < 0)
    throw Error("cannot serve metrics on " + opts_.listen +
                " (in use? pick another --metrics-listen, or '' to turn it off)");
  served_ = false;
  thread_ = std::thread([this] {
    server_.listen_after_bind();
    served_ = true;
  });
  return host + ":" + std::to_string(port);
}

void HttpEndpoints::Stop() {
  if (!thread_.joinable()) return;
  // httplib's stop() does nothing until the listening thread has marked itself running, so a Stop
  // right after Start could miss it and the join would wait for ever: stop until it has returned.
  while (!served_) {
    server_.stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  thread_.join();
}

}  // namespace ps

// psd's HTTP side: /metrics (Prometheus) and /healthz. The socket is exclusive (no SO_REUSEPORT,
// so a second psd on the port fails to start instead of taking half the scrapes); reads and writes
// time out and a pool of workers serves the connections, so slow or idle clients cannot starve
// /healthz.
#pragma once

#include <httplib.h>

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace ps {

struct HttpOptions {
  std::string listen;          // HOST:PORT (port 0: any free port)
  int workers = 64;            // concurrent connections served
  double read_timeout_s = 5;   // a request must arrive within this
  double write_timeout_s = 5;  // a reply must drain within this
  double keep_alive_s = 5;     // an idle connection is closed after this
};

class HttpEndpoints {
 public:
  // `metrics` renders the exposition text at each scrape.
  HttpEndpoints(HttpOptions opts, std::function<std::string()> metrics);
  ~HttpEndpoints();
  // Binds (throws ps::Error when the port is taken) and serves on a thread; returns HOST:PORT.
  std::string Start();
  void Stop();

 private:
  HttpOptions opts_;
  httplib::Server server_;
  std::thread thread_;
  std::atomic<bool> served_{false};  // listen_after_bind returned
};

// "HOST:PORT" -> (host, port); throws ps::Error naming `flag` for a missing or bad port
// (not a number, or outside 0..65535).
std::pair<std::string, int> SplitHostPort(const std::string& addr, const char* flag);

}  // namespace ps

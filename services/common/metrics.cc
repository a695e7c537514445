#include "services/common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "prometheus/histogram.h"
#include "prometheus/text_serializer.h"
#include "services/common/process_metrics.h"

namespace kvq::services {

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const Options& options) {
  auto m = std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint());
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->labels_ = {{"role", options.role}};
  if (options.port < 0) return m;
  if (options.port > 65535)
    return absl::InvalidArgumentError("metrics port out of range");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (inet_pton(AF_INET, options.bind_host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics bind host must be an IPv4 address, got ", options.bind_host));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 16) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const std::string err = std::strerror(errno);
    if (fd >= 0) close(fd);
    return absl::UnavailableError(absl::StrCat("metrics endpoint on ", options.bind_host,
                                               ":", options.port, ": ", err));
  }
  m->listen_fd_ = fd;
  m->port_ = ntohs(addr.sin_port);
  m->thread_ = std::thread([ep = m.get()] { ep->Serve(); });
  return m;
}

MetricsEndpoint::~MetricsEndpoint() {
  if (listen_fd_ < 0) return;
  stop_ = true;
  thread_.join();
  close(listen_fd_);
}

namespace {

// One HTTP connection of the /metrics endpoint, served without blocking.
struct Connection {
  int fd;
  absl::Time deadline;  // closed then, whatever its state
  std::string request;  // until the header's end
  std::string response;
  size_t sent = 0;
};

constexpr size_t kMaxConnections = 64;
constexpr size_t kMaxRequestBytes = 16384;
// A whole exchange; a scrape takes milliseconds.
constexpr absl::Duration kConnectionTimeout = absl::Seconds(5);

}  // namespace

// Serves every connection at once from one thread with non-blocking sockets:
// a client that sends its request slowly, or reads the answer slowly, holds
// only its own connection (and only until kConnectionTimeout), never the
// scrapes of others. With kMaxConnections open, a new one closes the oldest.
void MetricsEndpoint::Serve() {
  std::vector<Connection> conns;
  std::vector<pollfd> fds;
  while (!stop_) {
    fds.assign(1, pollfd{listen_fd_, POLLIN, 0});
    for (const Connection& c : conns) {
      fds.push_back({c.fd, static_cast<short>(c.response.empty() ? POLLIN : POLLOUT), 0});
    }
    if (poll(fds.data(), fds.size(), 100) < 0 && errno != EINTR) continue;
    const absl::Time now = absl::Now();
    for (size_t i = 0; i < conns.size(); ++i) {
      Connection& c = conns[i];
      const short revents = fds[i + 1].revents;
      bool done = now >= c.deadline || (revents & (POLLERR | POLLNVAL)) != 0;
      if (!done && c.response.empty() && (revents & (POLLIN | POLLHUP)) != 0) {
        char buf[2048];
        const ssize_t n = recv(c.fd, buf, sizeof(buf), 0);
        if (n > 0) {
          c.request.append(buf, static_cast<size_t>(n));
          if (c.request.find("\r\n\r\n") != std::string::npos ||
              c.request.size() >= kMaxRequestBytes) {
            c.response = Answer(c.request);
          }
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          done = true;
        }
      } else if (!done && !c.response.empty() && (revents & (POLLOUT | POLLHUP)) != 0) {
        const ssize_t n = send(c.fd, c.response.data() + c.sent,
                               c.response.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) {
          c.sent += static_cast<size_t>(n);
          done = c.sent == c.response.size();
        } else if (errno != EAGAIN && errno != EINTR) {
          done = true;
        }
      }
      if (done) {
        close(c.fd);
        c.fd = -1;
      }
    }
    conns.erase(std::remove_if(conns.begin(), conns.end(),
                               [](const Connection& c) { return c.fd < 0; }),
                conns.end());
    if ((fds[0].revents & POLLIN) == 0) continue;
    // Accept what is waiting (a few at a time, then serve again).
    for (int k = 0; k < 16; ++k) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) break;
      if (conns.size() >= kMaxConnections) {
        close(conns.front().fd);  // the oldest: slow or idle by now
        conns.erase(conns.begin());
      }
      conns.push_back({fd, absl::Now() + kConnectionTimeout});
    }
  }
  for (const Connection& c : conns) close(c.fd);
}

std::string MetricsEndpoint::Text() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  AppendProcessMetrics(labels_, &families);
  return prometheus::TextSerializer().Serialize(families);
}

std::string MetricsEndpoint::Answer(const std::string& request) const {
  std::string status = "200 OK", body;
  const std::string line = request.substr(0, request.find("\r\n"));
  if (absl::StartsWith(line, "GET /metrics ") ||
      absl::StartsWith(line, "GET /metrics?")) {
    body = Text();
  } else if (absl::StartsWith(line, "GET / ")) {
    body = "kvq metrics: see /metrics\n";
  } else {
    status = "404 Not Found";
    body = "not found\n";
  }
  return absl::StrCat("HTTP/1.1 ", status,
                      "\r\nContent-Type: text/plain; version=0.0.4; "
                      "charset=utf-8\r\nContent-Length: ",
                      body.size(), "\r\nConnection: close\r\n\r\n", body);
}

RpcMetrics::RpcMetrics(prometheus::Registry& registry, std::string role)
    : role_(std::move(role)),
      latency_(prometheus::BuildHistogram()
                   .Name("kvq_rpc_latency_seconds")
                   .Help("Server-side latency of each RPC, by method and status code.")
                   .Register(registry)),
      errors_(prometheus::BuildCounter()
                  .Name("kvq_rpc_errors_total")
                  .Help("RPCs that completed with a non-OK status, by method and code.")
                  .Register(registry)) {}

void RpcMetrics::Record(absl::string_view method, absl::StatusCode code,
                        absl::Duration latency) {
  static const auto* kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  const std::map<std::string, std::string> labels = {
      {"role", role_}, {"method", std::string(method)}, {"code", StatusCodeName(code)}};
  latency_.Add(labels, *kBuckets).Observe(absl::ToDoubleSeconds(latency));
  if (code != absl::StatusCode::kOk) errors_.Add(labels).Increment();
}

std::string StatusCodeName(absl::StatusCode code) {
  static const char* const kNames[] = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int i = static_cast<int>(code);
  if (i >= 0 && i < static_cast<int>(sizeof(kNames) / sizeof(kNames[0])))
    return kNames[i];
  return "UNKNOWN";  // a label value from a closed set, whatever the code
}

}  // namespace kvq::services

#include "services/common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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

void MetricsEndpoint::Serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{2, 0};  // a slow or silent client cannot hold the thread
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    Answer(fd);
    close(fd);
  }
}

std::string MetricsEndpoint::Text() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  AppendProcessMetrics(labels_, &families);
  return prometheus::TextSerializer().Serialize(families);
}

void MetricsEndpoint::Answer(int fd) {
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
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
  std::string response = absl::StrCat("HTTP/1.1 ", status,
                                      "\r\nContent-Type: text/plain; version=0.0.4; "
                                      "charset=utf-8\r\nContent-Length: ",
                                      body.size(), "\r\nConnection: close\r\n\r\n", body);
  size_t sent = 0;
  while (sent < response.size()) {
    const ssize_t n =
        send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<size_t>(n);
  }
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

void RpcMetrics::Record(absl::string_view method, grpc::StatusCode code,
                        absl::Duration latency) {
  static const auto* kBuckets = new prometheus::Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  const std::map<std::string, std::string> labels = {
      {"role", role_}, {"method", std::string(method)}, {"code", StatusCodeName(code)}};
  latency_.Add(labels, *kBuckets).Observe(absl::ToDoubleSeconds(latency));
  if (code != grpc::StatusCode::OK) errors_.Add(labels).Increment();
}

std::string StatusCodeName(grpc::StatusCode code) {
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
  return absl::StrCat("CODE_", i);
}

}  // namespace kvq::services

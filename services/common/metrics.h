// Prometheus metrics for a kvq service (design section 6): a registry, an
// optional /metrics HTTP endpoint, and per-RPC latency histograms and error
// counters labelled by role, method and code.
//
// The endpoint is a small HTTP/1.x server of our own on one thread, serving
// all its connections at once with non-blocking sockets (a slow client holds
// only its own connection, for at most 5 s), not
// prometheus::Exposer: Debian's civetweb runs its workers on 100 KiB stacks,
// and once libquadmath (pulled in by OpenBLAS via libgfortran) has registered
// printf hooks, every glibc printf takes the stack-hungry positional path and
// the worker overflows its stack (seen as a SIGSEGV or an empty body in `kvq`).
//
//   KVQ_ASSIGN_OR_RETURN(std::unique_ptr<MetricsEndpoint> metrics,
//                        MetricsEndpoint::Start({.role = "store", .port = 9100}));
//   RpcMetrics rpc(metrics->registry(), "store");
//   rpc.Record("PutBlocks", absl::StatusCode::kOk, absl::Milliseconds(3));
//   auto& gauge = prometheus::BuildGauge().Name("kvq_kvstore_bytes")...
//       .Register(metrics->registry()).Add(metrics->labels());
#ifndef KVQ_SERVICES_COMMON_METRICS_H_
#define KVQ_SERVICES_COMMON_METRICS_H_

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"

namespace kvq::services {

class MetricsEndpoint {
 public:
  struct Options {
    std::string role;  // "prefill", "decode", "store", "router"
    // < 0: no HTTP endpoint (metrics are still collected); 0: any free port.
    int port = -1;
    std::string bind_host = "0.0.0.0";
  };

  // UNAVAILABLE if the port cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Start(const Options& options);
  ~MetricsEndpoint();  // stops the HTTP thread

  prometheus::Registry& registry() { return *registry_; }
  // {"role": role}: the labels every metric of this service carries.
  const std::map<std::string, std::string>& labels() const { return labels_; }
  // The bound HTTP port, or -1 without an endpoint.
  int port() const { return port_; }
  // What GET /metrics answers: the registry's metrics and the process's
  // (process_metrics.h), in the Prometheus text format.
  std::string Text() const;

 private:
  MetricsEndpoint() = default;
  void Serve();  // the HTTP thread's loop
  // The whole HTTP response to `request` (its header).
  std::string Answer(const std::string& request) const;

  std::shared_ptr<prometheus::Registry> registry_;
  std::map<std::string, std::string> labels_;
  int port_ = -1;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// kvq_rpc_latency_seconds (histogram) and kvq_rpc_errors_total (counter of
// non-OK completions), labelled role, method, code (e.g. "RESOURCE_EXHAUSTED").
// Thread-safe.
class RpcMetrics {
 public:
  RpcMetrics(prometheus::Registry& registry, std::string role);

  void Record(absl::string_view method, absl::StatusCode code, absl::Duration latency);

 private:
  const std::string role_;
  prometheus::Family<prometheus::Histogram>& latency_;
  prometheus::Family<prometheus::Counter>& errors_;
};

// "OK", "CANCELLED", ... as in the gRPC spec; "UNKNOWN" for a number outside
// it (label values come from a closed set).
std::string StatusCodeName(absl::StatusCode code);

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_METRICS_H_

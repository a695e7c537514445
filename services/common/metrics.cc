#include "services/common/metrics.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "prometheus/histogram.h"

namespace kvq::services {

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Start(
    const Options& options) {
  auto m = std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint());
  m->registry_ = std::make_shared<prometheus::Registry>();
  m->labels_ = {{"role", options.role}};
  if (options.port < 0) return m;
  try {
    // civetweb reports bind failures as exceptions; keep them inside.
    m->exposer_ = std::make_unique<prometheus::Exposer>(
        absl::StrCat(options.bind_host, ":", options.port));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics endpoint on ", options.bind_host,
                                               ":", options.port, ": ", e.what()));
  }
  m->exposer_->RegisterCollectable(m->registry_);
  const std::vector<int> ports = m->exposer_->GetListeningPorts();
  m->port_ = ports.empty() ? options.port : ports[0];
  return m;
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

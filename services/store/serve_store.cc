// `kvq serve store`: runs the KV store service (design section 5) until
// SIGTERM or SIGINT, then shuts down gracefully. Prints
// "kvq store listening on HOST:PORT" once serving (tests bind port 0 and parse
// it) and, with --metrics_port, "kvq store metrics on HOST:PORT".
#include <signal.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/command.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"
#include "kvstore/kv_store.h"
#include "services/common/metrics.h"
#include "services/store/store_metrics.h"
#include "services/store/store_service.h"

ABSL_FLAG(std::string, address, "127.0.0.1:7070",
          "HOST:PORT the KV store listens on (port 0: any free port).");
ABSL_FLAG(int, port, -1, "If >= 0, replaces the port of --address (0: any free port).");
ABSL_FLAG(int64_t, capacity_bytes, int64_t{1} << 30,
          "Bytes of KV blocks the store holds before evicting (LRU, unleased only).");
ABSL_FLAG(int64_t, max_message_bytes, 4 << 20,
          "Largest gRPC message the store accepts or sends, in bytes.");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(60),
          "Longest lease a client may hold without renewing (and the default TTL).");
ABSL_FLAG(int, metrics_port, -1,
          "Port of the Prometheus /metrics endpoint (-1: none, 0: any free port).");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "On SIGTERM, how long in-flight calls get to finish before cancellation.");

namespace kvq::store {
namespace {

// "host:port" -> host and port (the last colon splits, so "[::]:50" works).
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  return absl::SimpleAtoi(address.substr(colon + 1), port) && *port >= 0 && *port < 65536;
}

int ServeStore() {
  std::string host;
  int port = 0;
  if (!SplitAddress(absl::GetFlag(FLAGS_address), &host, &port)) {
    std::fprintf(stderr, "kvq serve store: --address must be HOST:PORT, got %s\n",
                 absl::GetFlag(FLAGS_address).c_str());
    return 2;
  }
  if (absl::GetFlag(FLAGS_port) >= 0) port = absl::GetFlag(FLAGS_port);
  const int64_t capacity = absl::GetFlag(FLAGS_capacity_bytes);
  const int64_t max_message = absl::GetFlag(FLAGS_max_message_bytes);
  if (capacity <= 0 || max_message < (64 << 10) || max_message > (1 << 30)) {
    std::fprintf(stderr,
                 "kvq serve store: --capacity_bytes must be > 0 and --max_message_bytes "
                 "in [64 KiB, 1 GiB]\n");
    return 2;
  }

  // Block the shutdown signals in every thread gRPC starts; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  absl::StatusOr<std::unique_ptr<kvstore::KvStore>> engine =
      kvstore::KvStore::Open({.capacity_bytes = static_cast<uint64_t>(capacity),
                              .max_lease_ttl = absl::GetFlag(FLAGS_lease_ttl)});
  if (!engine.ok()) {
    std::fprintf(stderr, "kvq serve store: %s\n", engine.status().ToString().c_str());
    return 2;
  }
  absl::StatusOr<std::unique_ptr<services::MetricsEndpoint>> metrics =
      services::MetricsEndpoint::Start(
          {.role = "store", .port = absl::GetFlag(FLAGS_metrics_port)});
  if (!metrics.ok()) {
    std::fprintf(stderr, "kvq serve store: %s\n", metrics.status().ToString().c_str());
    return 1;
  }
  services::RpcMetrics rpc_metrics((*metrics)->registry(), "store");
  StoreMetrics store_metrics((*metrics)->registry(), (*metrics)->labels());
  store_metrics.Update((*engine)->Stats());
  StoreService service(engine->get(),
                       {.default_chunk_bytes = static_cast<uint32_t>(
                            std::min<int64_t>(1 << 20, max_message / 2))},
                       &rpc_metrics, &store_metrics);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(absl::StrCat(host, ":", port),
                           grpc::InsecureServerCredentials(), &bound_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(max_message));
  builder.SetMaxSendMessageSize(static_cast<int>(max_message));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || bound_port == 0) {
    std::fprintf(stderr, "kvq serve store: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  const std::string shown_host =
      (host == "0.0.0.0" || host == "[::]" || host.empty()) ? "127.0.0.1" : host;
  std::printf("kvq store listening on %s:%d\n", shown_host.c_str(), bound_port);
  if ((*metrics)->port() >= 0) {
    std::printf("kvq store metrics on %s:%d\n", shown_host.c_str(), (*metrics)->port());
  }
  std::fflush(stdout);

  int signal = 0;
  sigwait(&signals, &signal);
  std::printf("kvq store: signal %d, shutting down\n", signal);
  std::fflush(stdout);
  server->Shutdown(std::chrono::system_clock::now() +
                   absl::ToChronoSeconds(absl::GetFlag(FLAGS_shutdown_grace)));
  server->Wait();
  return 0;
}

const cli::CommandRegistrar kServeStore({
    .path = "serve store",
    .summary = "Run the KV store service (gRPC KvStore, design section 5).",
    .description =
        "Holds quantized KV blocks in memory with LRU eviction of unleased blocks.\n"
        "Prints `kvq store listening on HOST:PORT` once serving; SIGTERM shuts down\n"
        "gracefully. Health checking and server reflection are enabled.",
    .flags = {"address", "port", "capacity_bytes", "max_message_bytes", "lease_ttl",
              "metrics_port", "shutdown_grace"},
    .run = [](const std::vector<std::string>&) { return ServeStore(); },
});

}  // namespace
}  // namespace kvq::store

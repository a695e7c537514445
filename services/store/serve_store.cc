// `kvq serve store`: runs the KV store service (design section 5) until
// SIGTERM or SIGINT, then shuts down gracefully. Prints
// "kvq store listening on HOST:PORT" once serving (tests bind port 0 and parse
// it) and, with --metrics_port, "kvq store metrics on HOST:PORT".
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "grpcpp/grpcpp.h"
#include "kvstore/kv_store.h"
#include "services/common/authorizer.h"
#include "services/common/build_info.h"
#include "services/common/grpc_server.h"
#include "services/common/metrics.h"
#include "services/common/tls.h"
#include "services/store/server_setup.h"
#include "services/store/store_metrics.h"
#include "services/store/store_service.h"

ABSL_FLAG(std::string, address, "127.0.0.1:7070",
          "HOST:PORT the KV store listens on (port 0: any free port).");
ABSL_FLAG(int, port, -1, "If >= 0, replaces the port of --address (0: any free port).");
ABSL_FLAG(int64_t, capacity_bytes, int64_t{1} << 30,
          "Bytes of KV blocks the store holds before evicting (LRU, unleased only).");
ABSL_FLAG(int64_t, max_message_bytes, 4 << 20,
          "Largest gRPC message the store accepts or sends, in bytes.");
ABSL_FLAG(int64_t, max_assembling_bytes, -1,
          "Bytes of blocks all PutBlocks streams together may hold while receiving "
          "them (on top of --capacity_bytes); a block over it gets RESOURCE_EXHAUSTED. "
          "-1: the same as --capacity_bytes; 0: no limit.");
ABSL_FLAG(int64_t, max_assembling_bytes_per_client, -1,
          "Bytes of blocks one client's PutBlocks streams together may hold while "
          "receiving them (a client: its token's principal and its host). -1: a quarter "
          "of --max_assembling_bytes but at least 64 MiB (all of it when smaller; no "
          "limit when it is 0); 0: no limit.");
ABSL_FLAG(int64_t, max_get_bytes, int64_t{256} << 20,
          "Bytes of blocks one GetBlocks call may return; a call asking for more gets "
          "RESOURCE_EXHAUSTED. 0: no limit.");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(60),
          "Longest lease a client may hold without renewing (and the default TTL).");
ABSL_FLAG(int64_t, max_leases, 65536,
          "Leases the store holds at once over all clients (0: no limit).");
ABSL_FLAG(int64_t, max_leases_per_client, 1024,
          "Leases one client (its token's principal and its host) holds at once "
          "(0: no limit).");
ABSL_FLAG(std::string, writer_token_file, "",
          "File of worker tokens, one per line ('#' comments): a caller sending "
          "`authorization: Bearer <token>` with one may put blocks and take leases. "
          "With neither token file, anyone who reaches the store may do anything.");
ABSL_FLAG(std::string, admin_token_file, "",
          "File of operator tokens, one per line: a caller with one may also delete "
          "blocks and renew or release anyone's lease.");

ABSL_FLAG(std::vector<std::string>, writer_identities, {},
          "Comma-separated client certificate identities (a common name or a subject "
          "alternative name) that may do what a worker token may: over mTLS "
          "(--tls_client_auth), workers need no token.");
ABSL_FLAG(std::vector<std::string>, admin_identities, {},
          "Comma-separated client certificate identities that may do what an operator "
          "token may.");

namespace kvq::store {
namespace {

// "host:port" -> host and port (the last colon splits, so "[::]:50" works).
bool SplitAddress(const std::string& address, std::string* host, int* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return false;
  *host = address.substr(0, colon);
  return absl::SimpleAtoi(address.substr(colon + 1), port) && *port >= 0 && *port < 65536;
}

// The host the /metrics endpoint binds: that of --address, so that a store
// listening on loopback does not export its metrics to the network. IPv4
// only (the endpoint's limit): "[::]" binds every IPv4 interface, "[::1]"
// and "localhost" IPv4 loopback.
std::string MetricsBindHost(const std::string& host) {
  if (host.empty() || host == "[::]" || host == "::") return "0.0.0.0";
  if (host == "localhost" || host == "[::1]" || host == "::1") return "127.0.0.1";
  return host;
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
  const int64_t max_assembling = absl::GetFlag(FLAGS_max_assembling_bytes);
  const int64_t max_assembling_per_client =
      absl::GetFlag(FLAGS_max_assembling_bytes_per_client);
  if (max_assembling < -1 || max_assembling_per_client < -1) {
    std::fprintf(stderr,
                 "kvq serve store: --max_assembling_bytes and "
                 "--max_assembling_bytes_per_client must be >= -1\n");
    return 2;
  }
  const uint64_t assembling =
      static_cast<uint64_t>(max_assembling < 0 ? capacity : max_assembling);
  const uint64_t assembling_per_client =
      max_assembling_per_client >= 0
          ? static_cast<uint64_t>(max_assembling_per_client)
          : std::max(assembling / 4, std::min(assembling, uint64_t{64} << 20));
  if (absl::GetFlag(FLAGS_max_get_bytes) < 0 || absl::GetFlag(FLAGS_max_leases) < 0 ||
      absl::GetFlag(FLAGS_max_leases_per_client) < 0) {
    std::fprintf(stderr,
                 "kvq serve store: --max_get_bytes, --max_leases and "
                 "--max_leases_per_client must be >= 0\n");
    return 2;
  }
  const services::TlsOptions tls = cli::TlsOptionsFromFlags();
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      services::ServerCredentials(tls);
  if (!credentials.ok()) {
    std::fprintf(stderr, "kvq serve store: %s\n",
                 std::string(credentials.status().message()).c_str());
    return 2;
  }
  const bool identities = !absl::GetFlag(FLAGS_writer_identities).empty() ||
                          !absl::GetFlag(FLAGS_admin_identities).empty();
  if (identities && tls.ca_file.empty()) {
    std::fprintf(stderr,
                 "kvq serve store: --writer_identities / --admin_identities need client "
                 "certificates: give --tls_cert, --tls_key and --tls_ca\n");
    return 2;
  }
  absl::StatusOr<services::Authorizer> authorizer = services::Authorizer::FromTokenFiles(
      absl::GetFlag(FLAGS_writer_token_file), absl::GetFlag(FLAGS_admin_token_file));
  if (authorizer.ok() && identities) {
    authorizer = authorizer->WithIdentities(absl::GetFlag(FLAGS_writer_identities),
                                            absl::GetFlag(FLAGS_admin_identities));
  }
  if (!authorizer.ok()) {
    std::fprintf(stderr, "kvq serve store: %s\n",
                 std::string(authorizer.status().message()).c_str());
    return 2;
  }
  if (authorizer->open()) {
    std::fprintf(
        stderr,
        "kvq serve store: WARNING: no --writer_token_file, --admin_token_file or "
        "--writer_identities: "
        "anyone who can reach %s can overwrite, delete and pin cached blocks "
        "(docs/security.md)\n",
        absl::GetFlag(FLAGS_address).c_str());
  }

  SetStoreProcessDefaults();

  absl::StatusOr<std::unique_ptr<kvstore::KvStore>> engine = kvstore::KvStore::Open(
      {.capacity_bytes = static_cast<uint64_t>(capacity),
       .max_lease_ttl = absl::GetFlag(FLAGS_lease_ttl),
       .max_leases = static_cast<uint64_t>(absl::GetFlag(FLAGS_max_leases)),
       .max_leases_per_client =
           static_cast<uint64_t>(absl::GetFlag(FLAGS_max_leases_per_client))});
  if (!engine.ok()) {
    std::fprintf(stderr, "kvq serve store: %s\n", engine.status().ToString().c_str());
    return 2;
  }
  // /metrics binds the gRPC address's host, not every interface.
  absl::StatusOr<std::unique_ptr<services::MetricsEndpoint>> metrics =
      services::MetricsEndpoint::Start({.role = "store",
                                        .port = absl::GetFlag(FLAGS_metrics_port),
                                        .bind_host = MetricsBindHost(host)});
  if (!metrics.ok()) {
    std::fprintf(stderr, "kvq serve store: %s\n", metrics.status().ToString().c_str());
    return 1;
  }
  services::ExportBuildInfo((*metrics)->registry(), "store");
  services::RpcMetrics rpc_metrics((*metrics)->registry(), "store");
  StoreMetrics store_metrics((*metrics)->registry(), (*metrics)->labels());
  store_metrics.Update((*engine)->Stats());
  StoreService service(
      engine->get(),
      {.default_chunk_bytes =
           static_cast<uint32_t>(std::min<int64_t>(1 << 20, max_message / 2)),
       .max_assembling_bytes = assembling,
       .max_assembling_bytes_per_client = assembling_per_client,
       .max_get_bytes = static_cast<uint64_t>(absl::GetFlag(FLAGS_max_get_bytes)),
       .authorizer = &*authorizer},
      &rpc_metrics, &store_metrics);

  services::ServerOptions server;
  server.role = "store";
  server.host = host;
  server.port = port;
  server.grace = absl::GetFlag(FLAGS_shutdown_grace);
  server.credentials = *credentials;
  server.configure = [&](grpc::ServerBuilder& builder) {
    ConfigureStoreServer(builder, static_cast<int>(max_message));
  };
  server.on_ready = [&](int) {
    if ((*metrics)->port() >= 0) {
      std::printf("kvq store metrics on %s:%d\n", services::ShownHost(host).c_str(),
                  (*metrics)->port());
    }
  };
  server.on_drain = [&service] { service.StartDraining(); };
  server.active_calls = [&service] { return service.active_calls(); };
  absl::Status s = services::RunGrpcServer(server, {&service});
  if (!s.ok()) {
    std::fprintf(stderr, "kvq serve store: %s\n", s.ToString().c_str());
    return 1;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  // Every call has finished and nothing is buffered. Skip the library
  // teardown (civetweb's and gRPC's threads take seconds to wind down).
  std::_Exit(0);
}

const cli::CommandRegistrar kServeStore({
    .path = "serve store",
    .summary = "Run the KV store service (gRPC KvStore, design section 5).",
    .description =
        "Holds quantized KV blocks in memory with LRU eviction of unleased blocks.\n"
        "Prints `kvq store listening on HOST:PORT` once serving; SIGTERM shuts down\n"
        "gracefully. Health checking and server reflection are enabled.",
    .flags = cli::WithTlsFlags(
        {"address", "port", "capacity_bytes", "max_message_bytes", "max_assembling_bytes",
         "max_assembling_bytes_per_client", "max_get_bytes", "lease_ttl", "max_leases",
         "max_leases_per_client", "writer_token_file", "admin_token_file",
         "writer_identities", "admin_identities", "metrics_port", "shutdown_grace"}),
    .run = [](const std::vector<std::string>&) { return ServeStore(); },
});

}  // namespace
}  // namespace kvq::store

// Runs a kvq gRPC service process: binds a port (0 = any free one), enables
// standard health checking and server reflection, prints the line the
// launcher parses ("kvq <role> listening on 127.0.0.1:PORT"), then serves
// until SIGTERM or SIGINT and shuts down gracefully (in-flight calls get
// `grace` to finish, then are cancelled).
//
//   PrefillService service(...);
//   return RunGrpcServer({.role = "prefill", .port = 0}, {&service});
#ifndef KVQ_SERVICES_SERVING_GRPC_SERVER_H_
#define KVQ_SERVICES_SERVING_GRPC_SERVER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace kvq::serving {

struct ServerOptions {
  std::string role;  // "prefill", "decode", "router"
  std::string host = "127.0.0.1";
  int port = 0;
  absl::Duration grace = absl::Seconds(5);
  // Called once serving, before blocking (e.g. to start a metrics endpoint).
  std::function<void(int bound_port)> on_ready;
  // Called after SIGTERM, before the server shuts down (e.g. to wake waiters).
  std::function<void()> on_shutdown;
};

// Marks a call in flight for the graceful drain of RunGrpcServer: every
// handler holds one for its duration.
class InFlight {
 public:
  InFlight();
  ~InFlight();
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

// Blocks until SIGTERM/SIGINT. UNAVAILABLE if the port cannot be bound.
absl::Status RunGrpcServer(const ServerOptions& options,
                           const std::vector<grpc::Service*>& services);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_GRPC_SERVER_H_

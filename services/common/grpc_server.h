// The one server lifecycle of every kvq role (store, prefill, decode,
// router): bind (port 0 = any free port; a port another process holds is an
// error: SO_REUSEPORT is off), standard health checking and server
// reflection, print "kvq <role> listening on HOST:PORT" (the line the
// launcher and tests parse), serve until SIGTERM or SIGINT, then drain:
// health turns NOT_SERVING, `on_drain` runs (services refuse new calls with
// UNAVAILABLE from then on), calls in flight get `grace` to finish, the rest
// is cancelled.
//
//   PrefillGrpcService service(...);
//   KVQ_RETURN_IF_ERROR(RunGrpcServer({.role = "prefill", .port = 0}, {&service}));
//
// Handlers of synchronous services hold an InFlight for their duration and
// refuse work while Draining(); callback services (the store) count their
// own calls and pass `active_calls`.
#ifndef KVQ_SERVICES_COMMON_GRPC_SERVER_H_
#define KVQ_SERVICES_COMMON_GRPC_SERVER_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace kvq::services {

struct ServerOptions {
  std::string role;  // "store", "prefill", "decode", "router"
  std::string host = "127.0.0.1";
  int port = 0;
  absl::Duration grace = absl::Seconds(5);
  // Server credentials; insecure when null.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Extra builder settings (message sizes, channel arguments).
  std::function<void(grpc::ServerBuilder&)> configure;
  // Called once serving, before the "listening" line (e.g. to start or name
  // a metrics endpoint).
  std::function<void(int bound_port)> on_ready;
  // Called after SIGTERM/SIGINT, before the drain (e.g. to wake waiters or
  // make a callback service refuse new calls).
  std::function<void()> on_drain;
  // Calls still running; by default the InFlight count.
  std::function<int()> active_calls;
};

// Marks a call in flight for the drain: every synchronous handler holds one.
class InFlight {
 public:
  InFlight();
  ~InFlight();
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  static int count();
};

// True once the process received SIGTERM/SIGINT: new work is refused with
// UNAVAILABLE ("draining") so that clients retry another replica.
bool Draining();

// The status a handler returns for work refused while draining.
grpc::Status DrainingStatus(const std::string& role);

// Blocks until SIGTERM/SIGINT and the drain. UNAVAILABLE if the address
// cannot be bound (taken, bad host).
absl::Status RunGrpcServer(const ServerOptions& options,
                           const std::vector<grpc::Service*>& services);

// The host to print and connect to for a bind host ("0.0.0.0", "[::]" and ""
// become 127.0.0.1).
std::string ShownHost(const std::string& host);

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_GRPC_SERVER_H_

// Turns the router's worker targets into the endpoints it balances over.
// A target "dns:///NAME:PORT" (also "dns://AUTHORITY/NAME:PORT" or
// "dns:NAME:PORT"; the authority is ignored) stands for every address NAME
// resolves to, each with PORT: on Kubernetes, a headless Service names every
// ready worker pod. Any other target ("HOST:PORT", "ipv4:...", "unix:...")
// is one endpoint, itself (gRPC resolves it when it connects).
//
// The interface lets tests map a name to a set of loopback endpoints with
// different ports (real workers on one machine cannot share a port):
//
//   std::unique_ptr<Resolver> dns = Resolver::System();
//   KVQ_ASSIGN_OR_RETURN(std::vector<std::string> endpoints,
//                        dns->Resolve("dns:///kvq-prefill:50052"));
//   // {"10.0.0.7:50052", "10.0.0.9:50052"}
#ifndef KVQ_SERVICES_ROUTER_RESOLVER_H_
#define KVQ_SERVICES_ROUTER_RESOLVER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvq::router {

class Resolver {
 public:
  virtual ~Resolver() = default;

  // The endpoints ("HOST:PORT", IPv6 as "[ADDR]:PORT") that `target` names
  // now, sorted, without duplicates. INVALID_ARGUMENT for a dns target
  // without a port; UNAVAILABLE when the name does not resolve (or to no
  // address).
  virtual absl::StatusOr<std::vector<std::string>> Resolve(const std::string& target) = 0;

  // getaddrinfo(3) for dns targets (blocking: call it off the request path).
  static std::unique_ptr<Resolver> System();
};

// Whether `target` is a dns target (expanded by Resolve).
bool IsDnsTarget(const std::string& target);

}  // namespace kvq::router

#endif  // KVQ_SERVICES_ROUTER_RESOLVER_H_

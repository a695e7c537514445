// A network namespace joined to this one by a veth pair, with an optional
// bandwidth cap (tc tbf) on the traffic leaving this namespace through it:
// what `kvq bench serve` runs the KV store behind to measure how much of the
// prefill worker's push its compute hides. Needs root and iproute2 (ip, tc).
// The destructor deletes the namespace (and with it the pair), also when a
// bench fails; Create first removes namespaces left by dead benches.
//
//   KVQ_ASSIGN_OR_RETURN(std::unique_ptr<NetnsLink> link, NetnsLink::Create());
//   // run a server in it: {"ip", "netns", "exec", link->name(), ...}
//   KVQ_RETURN_IF_ERROR(link->SetRate(8'000'000));   // bits/s towards it
#ifndef KVQ_SERVICES_BENCH_NETNS_LINK_H_
#define KVQ_SERVICES_BENCH_NETNS_LINK_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kvq::bench {

class NetnsLink {
 public:
  // FAILED_PRECONDITION (saying what is missing) unless root with ip and tc;
  // the command's output otherwise when a step fails.
  static absl::StatusOr<std::unique_ptr<NetnsLink>> Create();
  ~NetnsLink();

  const std::string& name() const { return ns_; }                 // the namespace
  const std::string& inner_address() const { return inner_ip_; }  // in it
  const std::string& outer_address() const { return outer_ip_; }  // here
  // Argv prefix that runs a command inside the namespace.
  std::vector<std::string> ExecPrefix() const;

  // Caps the traffic from this namespace into it at `bits_per_second` (a
  // token bucket with a queue deep enough not to drop); 0 removes the cap.
  absl::Status SetRate(uint64_t bits_per_second);

 private:
  NetnsLink() = default;
  std::string ns_, outer_dev_, inner_dev_, outer_ip_, inner_ip_;
  bool created_ = false;
};

// Runs argv (argv[0] looked up in PATH and /usr/sbin, /sbin), returning its
// stdout and stderr; INTERNAL with that output when it exits non-zero.
absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv);

}  // namespace kvq::bench

#endif  // KVQ_SERVICES_BENCH_NETNS_LINK_H_

// The local launcher (design section 7): runs a whole disaggregated cluster
// on loopback as separate processes — S KV store shards, N prefill workers,
// M decode workers and the router — each `kvq serve <role>` on a free port
// (port 0; the child prints "kvq <role> listening on 127.0.0.1:PORT"). The
// workers get every shard (`--store=A,B,...`, the same list in the same
// order, so they place blocks alike) and the router every worker. Start
// waits until every service answers the gRPC health check; Stop (and the
// destructor) stops them all, router first, with SIGTERM then SIGKILL. The
// children die with the launcher (PR_SET_PDEATHSIG) and share one process
// group. Restart brings a service back on its port (addresses stay valid).
// Used by `kvq demo`, `kvq bench serve` and the integration tests.
//
//   ClusterOptions opts;
//   opts.model = kvq::DefaultModelDir();
//   opts.store_shards = 2;
//   opts.prefill_workers = 2;
//   KVQ_ASSIGN_OR_RETURN(std::unique_ptr<Cluster> cluster, Cluster::Start(opts));
//   auto stub = kvq::v1::Router::NewStub(grpc::CreateChannel(
//       cluster->router_address(), grpc::InsecureChannelCredentials()));
#ifndef KVQ_SERVICES_LAUNCHER_LAUNCHER_H_
#define KVQ_SERVICES_LAUNCHER_LAUNCHER_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/child_process.h"
#include "services/common/tls_options.h"
#include "services/launcher/cluster_credentials.h"

namespace kvq::launcher {

// GOMP_SPINCOUNT the launcher gives the services it starts (unless the
// environment sets GOMP_SPINCOUNT or OMP_WAIT_POLICY itself): libgomp's
// threads spin this many times at a barrier, then sleep.
inline constexpr char kServiceSpinCount[] = "3000";

struct ClusterOptions {
  // The kvq binary; "" = FindKvqBinary().
  std::string kvq_binary;
  // Model directory or checkpoint, passed to every worker and the router.
  std::string model;
  int store_shards = 1;  // with_store only
  int prefill_workers = 1;
  int decode_workers = 1;
  // Start the store (false: colocated decode workers only, no store).
  bool with_store = true;
  // Start the router.
  bool with_router = true;
  // Decode workers' KV memory budget in bytes (0 = the worker's default).
  long long decode_kv_budget_bytes = 0;
  // Extra flags per role (e.g. {"--capacity_bytes=1000000"} for the store).
  std::vector<std::string> store_flags, prefill_flags, decode_flags, router_flags;
  // Echo children's output to stderr with a "[role-i]" prefix.
  bool echo_output = false;
  // Per service: time to print its port and then to become healthy.
  absl::Duration start_timeout = absl::Seconds(30);
  // Locked down: every service serves mTLS with certificates of a temporary
  // CA (MakeClusterCredentials, removed on Stop), the store takes writes
  // only from the worker certificate or token and deletes only with the
  // operator token, and the workers send the worker token.
  bool tls = false;
};

enum class Role { kStore, kPrefill, kDecode, kRouter };

class Cluster {
 public:
  // Starts the services in dependency order (store, prefill, decode, router)
  // and waits until each is healthy. On any failure stops what it started
  // and returns the error, including the failing child's output.
  static absl::StatusOr<std::unique_ptr<Cluster>> Start(const ClusterOptions& options);

  ~Cluster();  // Stop()

  // Stops every service: router, decode, prefill, store. Idempotent.
  void Stop();

  // Starts service `i` of `role` again with its command line on its port
  // (stopping it first with SIGKILL if it still runs) and waits until it is
  // healthy. The old ChildProcess is destroyed: fetch child pointers anew.
  // UNAVAILABLE when it does not come back (e.g. the port is still taken).
  absl::Status Restart(Role role, int i);

  const std::string& router_address() const;
  const std::string& store_address() const;  // the first shard
  std::vector<std::string> store_addresses() const;
  std::vector<std::string> prefill_addresses() const;
  std::vector<std::string> decode_addresses() const;
  // With ClusterOptions::tls: what a client of the cluster dials with (the
  // "kvq-client" certificate, a reader of the store), and the certificates
  // and tokens. Plaintext options / null without.
  const services::TlsOptions& client_tls() const { return client_tls_; }
  const ClusterCredentials* credentials() const {
    return options_.tls ? &credentials_ : nullptr;
  }

  ChildProcess* store(int i = 0) { return stores_.empty() ? nullptr : stores_[i].get(); }
  ChildProcess* router() { return router_.get(); }
  ChildProcess* prefill(int i) { return prefill_[i].get(); }
  ChildProcess* decode(int i) { return decode_[i].get(); }

 private:
  Cluster() = default;
  absl::StatusOr<std::unique_ptr<ChildProcess>> StartOne(const std::string& name,
                                                         std::vector<std::string> argv);
  std::unique_ptr<ChildProcess>* Slot(Role role, int i);

  ClusterOptions options_;
  pid_t group_ = 0;
  std::vector<std::unique_ptr<ChildProcess>> stores_;
  std::unique_ptr<ChildProcess> router_;
  std::vector<std::unique_ptr<ChildProcess>> prefill_, decode_;
  // Per child (by name): its command line with its port fixed, for Restart.
  std::map<std::string, std::vector<std::string>> argv_;
  std::string empty_;
  std::string credentials_dir_;  // removed by Stop()
  ClusterCredentials credentials_;
  services::TlsOptions client_tls_;
};

// The kvq binary to run services with: $KVQ_BINARY; this process itself when
// it is kvq; else kvq in the Bazel runfiles ($TEST_SRCDIR/kvq/kvq). "" when
// none is found.
std::string FindKvqBinary();

}  // namespace kvq::launcher

#endif  // KVQ_SERVICES_LAUNCHER_LAUNCHER_H_

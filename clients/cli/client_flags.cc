#include "clients/cli/client_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, router, "127.0.0.1:50050",
          "kvq client: HOST:PORT of the router (the client-facing Generate).");
ABSL_FLAG(absl::Duration, rpc_timeout, absl::Minutes(5),
          "kvq client: deadline of each call (e.g. 30s, 5m).");

namespace kvq::clients {

bool RpcTimeoutValid() {
  const absl::Duration d = absl::GetFlag(FLAGS_rpc_timeout);
  return d > absl::ZeroDuration() && d != absl::InfiniteDuration();
}

}  // namespace kvq::clients

// `kvq client health ADDRESS...`: the standard gRPC health check of kvq
// services (services/launcher/health_check.h), one line per address.
//
//   kvq client health 127.0.0.1:50050 127.0.0.1:7070
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "services/common/tls.h"
#include "services/launcher/health_check.h"

namespace kvq::clients {
namespace {

int RunHealth(const std::vector<std::string>& args) {
  if (args.empty()) {
    std::fprintf(stderr, "kvq client health: give one or more HOST:PORT addresses\n");
    return 2;
  }
  if (!cli::RpcTimeoutValid()) {
    std::fprintf(stderr,
                 "kvq client health: --rpc_timeout must be positive and finite\n");
    return 2;
  }
  absl::StatusOr<services::ChannelSecurity> security =
      services::ChannelSecurity::Create(cli::TlsOptionsFromFlags());
  if (!security.ok()) {
    std::fprintf(stderr, "kvq client health: %s\n",
                 std::string(security.status().message()).c_str());
    return 2;
  }
  int unhealthy = 0;
  for (const std::string& address : args) {
    const absl::Status s =
        launcher::CheckHealth(address, absl::GetFlag(FLAGS_rpc_timeout), "", *security);
    std::printf("%s: %s\n", address.c_str(), s.ok() ? "SERVING" : s.ToString().c_str());
    unhealthy += !s.ok();
  }
  return unhealthy > 0 ? 1 : 0;
}

const cli::CommandRegistrar kHealth({
    .path = "client health",
    .summary = "gRPC health check of kvq services.",
    .description =
        "Asks each HOST:PORT argument for its standard gRPC health status and prints\n"
        "SERVING or the reason it is not. Exit status 1 if any is not serving.\n"
        "Example: kvq client health --rpc_timeout=2s 127.0.0.1:50050 127.0.0.1:7070",
    .flags = cli::WithTlsFlags({"rpc_timeout"}),
    .run = RunHealth,
});

}  // namespace
}  // namespace kvq::clients

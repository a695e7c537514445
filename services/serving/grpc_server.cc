#include "services/serving/grpc_server.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace kvq::serving {
namespace {

std::atomic<bool> g_stop{false};
std::atomic<int> g_in_flight{0};

void OnSignal(int) { g_stop.store(true); }

}  // namespace

InFlight::InFlight() { ++g_in_flight; }
InFlight::~InFlight() { --g_in_flight; }

absl::Status RunGrpcServer(const ServerOptions& options,
                           const std::vector<grpc::Service*>& services) {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string addr = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &port);
  for (grpc::Service* s : services) builder.RegisterService(s);
  // Sync-server threads poll their queues with this timeout; the default
  // (1 s) makes every shutdown take seconds.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 50);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", addr));
  }
  if (options.on_ready) options.on_ready(port);
  std::printf("kvq %s listening on %s:%d\n", options.role.c_str(), options.host.c_str(),
              port);
  std::fflush(stdout);
  while (!g_stop.load()) absl::SleepFor(absl::Milliseconds(20));
  server->GetHealthCheckService()->SetServingStatus(false);
  if (options.on_shutdown) options.on_shutdown();
  // Drain: in-flight calls get `grace` to finish, then the rest is
  // cancelled. (Shutdown's own deadline would also wait on idle client
  // connections, so it is only used for the cancellation.)
  const absl::Time deadline = absl::Now() + options.grace;
  while (g_in_flight.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(100)));
  std::printf("kvq %s stopped\n", options.role.c_str());
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace kvq::serving

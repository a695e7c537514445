#include "services/common/grpc_server.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"

namespace kvq::services {
namespace {

std::atomic<bool> g_draining{false};
std::atomic<int> g_in_flight{0};
int g_signal_pipe[2] = {-1, -1};

extern "C" void OnShutdownSignal(int signal) {
  const char c = static_cast<char>(signal);
  (void)!write(g_signal_pipe[1], &c, 1);  // async-signal-safe
}

}  // namespace

InFlight::InFlight() { ++g_in_flight; }
InFlight::~InFlight() { --g_in_flight; }
int InFlight::count() { return g_in_flight.load(); }

bool Draining() { return g_draining.load(); }

grpc::Status DrainingStatus(const std::string& role) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                      absl::StrCat("this ", role, " is shutting down; retry another"));
}

std::string ShownHost(const std::string& host) {
  return (host == "0.0.0.0" || host == "[::]" || host.empty()) ? "127.0.0.1" : host;
}

absl::Status RunGrpcServer(const ServerOptions& options,
                           const std::vector<grpc::Service*>& services) {
  // SIGTERM/SIGINT go to a handler that writes to a pipe this thread reads.
  // A handler, not a blocked mask plus sigwait: threads started before this
  // (OpenBLAS starts its pool at load) would otherwise take a second signal
  // with the default action and kill the process mid-drain.
  if (g_signal_pipe[0] < 0 && pipe2(g_signal_pipe, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  struct sigaction action = {};
  action.sa_handler = OnShutdownSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string address = absl::StrCat(options.host, ":", options.port);
  builder.AddListeningPort(
      address,
      options.credentials ? options.credentials : grpc::InsecureServerCredentials(),
      &port);
  // A second server on a taken port must fail, not share it.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Sync-server threads poll their queues with this timeout; the default
  // (1 s) makes every shutdown take seconds.
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::CQ_TIMEOUT_MSEC, 50);
  if (options.configure) options.configure(builder);
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", address, " (is the port taken by another process?)"));
  }
  if (options.on_ready) options.on_ready(port);
  std::printf("kvq %s listening on %s:%d\n", options.role.c_str(),
              ShownHost(options.host).c_str(), port);
  std::fflush(stdout);

  char signal = 0;
  while (read(g_signal_pipe[0], &signal, 1) < 0 && errno == EINTR) {
  }
  std::printf("kvq %s: signal %d, shutting down\n", options.role.c_str(), signal);
  std::fflush(stdout);
  g_draining.store(true);
  // Health turns NOT_SERVING and new calls fail UNAVAILABLE (clients retry
  // elsewhere); calls in progress get up to `grace` to finish. gRPC's own
  // Shutdown(deadline) would also wait for idle client connections to close,
  // i.e. always the whole grace, so the drain is tracked here.
  if (grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService()) {
    health->Shutdown();
  }
  if (options.on_drain) options.on_drain();
  const std::function<int()> active =
      options.active_calls ? options.active_calls : [] { return InFlight::count(); };
  const absl::Time deadline = absl::Now() + options.grace;
  while (active() > 0 && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
  // Whatever is left (replies being sent) gets a moment, then is cancelled.
  server->Shutdown(absl::ToChronoTime(absl::Now() + absl::Milliseconds(200)));
  server->Wait();
  std::printf("kvq %s: stopped\n", options.role.c_str());
  std::fflush(stdout);
  return absl::OkStatus();
}

}  // namespace kvq::services

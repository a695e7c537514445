// Test helper for the end-to-end tests written in Python (clients_*_test.py,
// prometheus_e2e_test.py): starts a local kvq cluster with the launcher
// (services/launcher/launcher.h) — store, prefill, decode and router, each
// its own `kvq serve` process on loopback with its /metrics endpoint on a
// free port — prints one JSON line describing it, and keeps it running until
// its stdin closes or it gets SIGTERM/SIGINT. Then it stops every service.
//
//   clients_cluster --model=DIR [--prefill_workers=1] [--decode_workers=1]
//   {"router":"127.0.0.1:41000","store":"127.0.0.1:41001","prefill":[...],
//    "decode":[...],"metrics":{"store":["127.0.0.1:41002"],"prefill":[...],...}}
//
// A driver that dies closes the pipe, so the cluster never outlives it; the
// services themselves die with this process (PR_SET_PDEATHSIG).
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "nlohmann/json.hpp"
#include "services/launcher/launcher.h"

ABSL_FLAG(std::string, model, "", "Model directory or checkpoint for every worker.");
ABSL_FLAG(int, prefill_workers, 1, "Prefill workers to start.");
ABSL_FLAG(int, decode_workers, 1, "Decode workers to start.");

namespace kvq::launcher {
namespace {

// The "HOST:PORT" of a "kvq ROLE metrics on HOST:PORT" line in the child's
// output. The line comes next to the listening line; wait a little for it.
absl::StatusOr<std::string> MetricsAddress(ChildProcess* child) {
  static constexpr char kMarker[] = " metrics on ";
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  while (absl::Now() < deadline) {
    const std::string out = child->Output();
    const size_t at = out.find(kMarker);
    if (at != std::string::npos) {
      const size_t begin = at + sizeof(kMarker) - 1;
      const size_t end = out.find_first_of(" \r\n", begin);
      if (end != std::string::npos) {
        std::string address = out.substr(begin, end - begin);
        // Workers print the bind host; 0.0.0.0 is reachable as loopback.
        if (address.rfind("0.0.0.0:", 0) == 0) address.replace(0, 7, "127.0.0.1");
        return address;
      }
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat(child->name(), " printed no metrics address:\n", child->Output()));
}

int Run() {
  ClusterOptions options;
  options.model = absl::GetFlag(FLAGS_model);
  options.prefill_workers = absl::GetFlag(FLAGS_prefill_workers);
  options.decode_workers = absl::GetFlag(FLAGS_decode_workers);
  const std::vector<std::string> metrics_flag = {"--metrics_port=0"};
  options.store_flags = metrics_flag;
  options.prefill_flags = metrics_flag;
  options.decode_flags = metrics_flag;
  options.router_flags = metrics_flag;
  if (options.model.empty()) {
    std::fprintf(stderr, "clients_cluster: --model is required\n");
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Cluster>> cluster = Cluster::Start(options);
  if (!cluster.ok()) {
    std::fprintf(stderr, "clients_cluster: %s\n", cluster.status().ToString().c_str());
    return 1;
  }
  Cluster& c = **cluster;

  nlohmann::json out;
  out["router"] = c.router_address();
  out["store"] = c.store_address();
  out["prefill"] = c.prefill_addresses();
  out["decode"] = c.decode_addresses();
  std::map<std::string, std::vector<ChildProcess*>> roles = {{"store", {c.store()}},
                                                             {"router", {c.router()}}};
  for (int i = 0; i < options.prefill_workers; ++i)
    roles["prefill"].push_back(c.prefill(i));
  for (int i = 0; i < options.decode_workers; ++i) roles["decode"].push_back(c.decode(i));
  for (const auto& [role, children] : roles) {
    out["metrics"][role] = nlohmann::json::array();
    for (ChildProcess* child : children) {
      absl::StatusOr<std::string> address = MetricsAddress(child);
      if (!address.ok()) {
        std::fprintf(stderr, "clients_cluster: %s\n",
                     address.status().ToString().c_str());
        return 1;  // ~Cluster stops the services
      }
      out["metrics"][role].push_back(*address);
      out["pids"].push_back(child->pid());
    }
  }
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);

  // The services are forked already, so blocking the signals here does not
  // leak into them. A reader thread turns stdin's end into a SIGTERM.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([] {
    char buf[256];
    while (read(STDIN_FILENO, buf, sizeof(buf)) > 0) {
    }
    kill(getpid(), SIGTERM);
  }).detach();
  int signal = 0;
  sigwait(&signals, &signal);
  c.Stop();
  std::fprintf(stderr, "clients_cluster: stopped (signal %d)\n", signal);
  std::fflush(stderr);
  std::_Exit(0);  // the stdin reader may still be blocked in read()
}

}  // namespace
}  // namespace kvq::launcher

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return kvq::launcher::Run();
}

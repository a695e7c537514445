#include "services/store/bench_baselines.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "nlohmann/json.hpp"

namespace kvq::store {
namespace {

bool HaveTool(const std::string& name) {
  return std::system(absl::StrCat("command -v ", name, " >/dev/null 2>&1").c_str()) == 0;
}

// Runs `cmd` through the shell and returns its stdout; INTERNAL on failure.
absl::StatusOr<std::string> Capture(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return absl::InternalError(absl::StrCat("cannot run ", cmd));
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) return absl::InternalError(absl::StrCat(cmd, " exited with ", rc));
  return out;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// Forks and execs argv with stdout/stderr to /dev/null; returns the pid.
pid_t Spawn(const std::vector<std::string>& argv) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  FILE* null = std::fopen("/dev/null", "w");
  if (null != nullptr) {
    dup2(fileno(null), 1);
    dup2(fileno(null), 2);
  }
  execvp(args[0], args.data());
  _exit(127);
}

void StopChild(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  int status;
  waitpid(pid, &status, 0);
}

bool WaitForPort(int port, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (ok) return true;
    absl::SleepFor(absl::Milliseconds(20));
  }
  return false;
}

}  // namespace

absl::StatusOr<double> IperfGbps(int streams, absl::Duration duration) {
  if (!HaveTool("iperf3")) return absl::NotFoundError("iperf3 is not installed");
  const int port = FreePort();
  // Not `-s -1`: the readiness probe below is a connection too.
  const pid_t server = Spawn({"iperf3", "-s", "-p", std::to_string(port)});
  if (!WaitForPort(port, absl::Seconds(5))) {
    StopChild(server);
    return absl::UnavailableError("iperf3 server did not start");
  }
  // iperf3 takes the probe for a client; let it drop it and listen again.
  absl::SleepFor(absl::Milliseconds(300));
  absl::StatusOr<std::string> out =
      Capture(absl::StrCat("iperf3 -c 127.0.0.1 -p ", port, " -P ", streams, " -t ",
                           absl::ToDoubleSeconds(duration), " -J 2>/dev/null"));
  StopChild(server);
  if (!out.ok()) return out.status();
  const nlohmann::json j = nlohmann::json::parse(*out, nullptr, false);
  const nlohmann::json::json_pointer bps("/end/sum_received/bits_per_second");
  if (j.is_discarded() || !j.contains(bps) || !j[bps].is_number()) {
    return absl::InternalError(absl::StrCat(
        "iperf3 gave no throughput: ", j.is_discarded() ? *out : j.value("error", "")));
  }
  return j[bps].get<double>() / 8e9;
}

absl::StatusOr<RedisResult> RunRedisBenchmark(int clients, size_t value_bytes,
                                              int requests, int pipeline) {
  if (!HaveTool("redis-server") || !HaveTool("redis-benchmark")) {
    return absl::NotFoundError("redis-server / redis-benchmark are not installed");
  }
  const int port = FreePort();
  const pid_t server =
      Spawn({"redis-server", "--port", std::to_string(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--protected-mode", "no"});
  if (!WaitForPort(port, absl::Seconds(5))) {
    StopChild(server);
    return absl::UnavailableError("redis-server did not start");
  }
  absl::StatusOr<std::string> out = Capture(absl::StrCat(
      "redis-benchmark -h 127.0.0.1 -p ", port, " -t set,get -d ", value_bytes, " -c ",
      clients, " -n ", requests, " -P ", pipeline, " --csv 2>/dev/null"));
  StopChild(server);
  if (!out.ok()) return out.status();
  // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
  // "p95_latency_ms","p99_latency_ms","max_latency_ms"
  RedisResult result;
  int found = 0;
  for (absl::string_view line : absl::StrSplit(*out, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ',');
    if (f.size() < 7) continue;
    for (std::string& s : f)
      s = std::string(absl::StripSuffix(absl::StripPrefix(s, "\""), "\""));
    RedisOpResult* op = f[0] == "SET"   ? &result.set
                        : f[0] == "GET" ? &result.get
                                        : nullptr;
    double rps = 0;
    if (op == nullptr || !absl::SimpleAtod(f[1], &rps) ||
        !absl::SimpleAtod(f[4], &op->p50_ms) || !absl::SimpleAtod(f[6], &op->p99_ms)) {
      continue;
    }
    op->gbps = rps * static_cast<double>(value_bytes) / 1e9;
    ++found;
  }
  if (found != 2) return absl::InternalError("cannot parse redis-benchmark --csv output");
  return result;
}

}  // namespace kvq::store

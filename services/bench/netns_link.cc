#include "services/bench/netns_link.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace kvq::bench {
namespace {

constexpr char kPrefix[] = "kvqbench-";

std::string FindTool(const std::string& name) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> dirs = {"/usr/sbin", "/sbin", "/usr/bin", "/bin"};
  if (const char* path = std::getenv("PATH")) {
    for (absl::string_view d : absl::StrSplit(path, ':', absl::SkipEmpty())) {
      dirs.insert(dirs.begin(), std::string(d));
    }
  }
  for (const std::string& d : dirs) {
    const fs::path p = fs::path(d) / name;
    if (fs::exists(p, ec) && access(p.c_str(), X_OK) == 0) return p.string();
  }
  return "";
}

// Deletes kvqbench-PID namespaces whose bench process is gone.
void RemoveStale() {
  absl::StatusOr<std::string> list = RunCommand({"ip", "netns", "list"});
  if (!list.ok()) return;
  for (absl::string_view line : absl::StrSplit(*list, '\n', absl::SkipEmpty())) {
    const std::string name(line.substr(0, line.find(' ')));
    int pid = 0;
    if (!absl::StartsWith(name, kPrefix) ||
        !absl::SimpleAtoi(absl::string_view(name).substr(sizeof(kPrefix) - 1), &pid)) {
      continue;
    }
    if (pid > 0 && kill(pid, 0) != 0 && errno == ESRCH) {
      (void)RunCommand({"ip", "netns", "del", name});
    }
  }
}

}  // namespace

absl::StatusOr<std::string> RunCommand(const std::vector<std::string>& argv) {
  if (argv.empty()) return absl::InvalidArgumentError("empty command");
  const std::string tool = FindTool(argv[0]);
  if (tool.empty()) return absl::NotFoundError(absl::StrCat(argv[0], " not found"));
  int fds[2];
  if (pipe(fds) != 0) return absl::InternalError("pipe failed");
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    dup2(fds[1], 1);
    dup2(fds[1], 2);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args[0] = const_cast<char*>(tool.c_str());
    args.push_back(nullptr);
    execv(tool.c_str(), args.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof(buf))) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("`", absl::StrJoin(argv, " "), "` failed: ", out));
  }
  return out;
}

absl::StatusOr<std::unique_ptr<NetnsLink>> NetnsLink::Create() {
  if (geteuid() != 0) {
    return absl::FailedPreconditionError(
        "the transfer-overlap benchmark needs root (it creates a network namespace, a "
        "veth pair and a tc bandwidth cap); run it as root or skip it with "
        "--overlap=false");
  }
  for (const char* tool : {"ip", "tc"}) {
    if (FindTool(tool).empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the transfer-overlap benchmark needs `", tool,
          "` (iproute2: apt-get install iproute2); skip it with --overlap=false"));
    }
  }
  RemoveStale();
  std::unique_ptr<NetnsLink> link(new NetnsLink());
  const int pid = static_cast<int>(getpid());
  link->ns_ = absl::StrCat(kPrefix, pid);
  link->outer_dev_ = absl::StrCat("kvqb", pid, "a");
  link->inner_dev_ = absl::StrCat("kvqb", pid, "b");
  // A /30 in 10.213.0.0/16 picked by the pid (two benches rarely collide).
  const int net = (pid % 16384) * 4;
  const std::string base = absl::StrCat("10.213.", net / 256, ".");
  link->outer_ip_ = absl::StrCat(base, net % 256 + 1);
  link->inner_ip_ = absl::StrCat(base, net % 256 + 2);
  KVQ_RETURN_IF_ERROR(RunCommand({"ip", "netns", "add", link->ns_}).status());
  link->created_ = true;  // the destructor cleans up from here on
  const std::vector<std::string> in_ns = {"ip", "netns", "exec", link->ns_, "ip"};
  auto ns_ip = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = in_ns;
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv).status();
  };
  KVQ_RETURN_IF_ERROR(RunCommand({"ip", "link", "add", link->outer_dev_, "type", "veth",
                                  "peer", "name", link->inner_dev_})
                          .status());
  KVQ_RETURN_IF_ERROR(
      RunCommand({"ip", "link", "set", link->inner_dev_, "netns", link->ns_}).status());
  KVQ_RETURN_IF_ERROR(
      RunCommand({"ip", "addr", "add", link->outer_ip_ + "/30", "dev", link->outer_dev_})
          .status());
  KVQ_RETURN_IF_ERROR(RunCommand({"ip", "link", "set", link->outer_dev_, "up"}).status());
  KVQ_RETURN_IF_ERROR(
      ns_ip({"addr", "add", link->inner_ip_ + "/30", "dev", link->inner_dev_}));
  KVQ_RETURN_IF_ERROR(ns_ip({"link", "set", link->inner_dev_, "up"}));
  KVQ_RETURN_IF_ERROR(ns_ip({"link", "set", "lo", "up"}));
  return link;
}

NetnsLink::~NetnsLink() {
  if (!created_) return;
  // Deleting the namespace deletes its end of the pair and so the pair; the
  // explicit delete covers a pair whose inner end never moved there.
  (void)RunCommand({"ip", "link", "del", outer_dev_});
  (void)RunCommand({"ip", "netns", "del", ns_});
}

std::vector<std::string> NetnsLink::ExecPrefix() const {
  return {FindTool("ip"), "netns", "exec", ns_};
}

absl::Status NetnsLink::SetRate(uint64_t bits_per_second) {
  if (bits_per_second == 0) {
    (void)RunCommand({"tc", "qdisc", "del", "dev", outer_dev_, "root"});
    return absl::OkStatus();
  }
  // Burst: at least 10 ms of traffic or 16 KiB; the queue holds 2 s of it so
  // that TCP is slowed by the bucket, not by drops.
  const uint64_t burst = std::max<uint64_t>(16384, bits_per_second / 8 / 100);
  return RunCommand({"tc", "qdisc", "replace", "dev", outer_dev_, "root", "tbf", "rate",
                     absl::StrCat(bits_per_second, "bit"), "burst", absl::StrCat(burst),
                     "latency", "2s"})
      .status();
}

}  // namespace kvq::bench

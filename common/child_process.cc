#include "common/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace kvq {

bool ParseListeningLine(const std::string& line, std::string* host, int* port) {
  static constexpr char kMarker[] = "listening on ";
  const size_t at = line.find(kMarker);
  if (at == std::string::npos) return false;
  std::string rest = line.substr(at + sizeof(kMarker) - 1);
  const size_t end = rest.find_first_of(" \t\r\n");
  if (end != std::string::npos) rest.resize(end);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  int p = 0;
  if (!absl::SimpleAtoi(rest.substr(colon + 1), &p) || p <= 0 || p > 65535) return false;
  *host = rest.substr(0, colon);
  *port = p;
  return true;
}

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Start(
    const std::string& name, const std::vector<std::string>& argv,
    const ChildOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("empty argv");
  // The child's environment: ours plus the defaults we do not set.
  std::vector<char*> cenv;
  for (char** e = environ; *e != nullptr; ++e) cenv.push_back(*e);
  for (const std::string& kv : options.env_defaults) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("env default \"", kv, "\" is not NAME=VALUE"));
    }
    if (std::getenv(kv.substr(0, eq).c_str()) == nullptr) {
      cenv.push_back(const_cast<char*>(kv.c_str()));
    }
  }
  cenv.push_back(nullptr);
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed.
  std::vector<char*> cargv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t group = options.process_group;

  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the launcher died before prctl
    setpgid(0, group);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execve(cargv[0], cargv.data(), cenv.data());
    static constexpr char kMsg[] = "exec failed\n";
    (void)!write(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
    _exit(127);
  }
  // Also from the parent, so the group exists before we return (no race).
  setpgid(pid, group == 0 ? pid : group);
  close(fds[1]);

  std::unique_ptr<ChildProcess> child(
      new ChildProcess(name, pid, group == 0 ? pid : group, fds[0], options.echo_output));
  const absl::Time deadline = absl::Now() + options.listen_timeout;
  while (true) {
    {
      std::lock_guard<std::mutex> lock(child->mu_);
      for (absl::string_view line : absl::StrSplit(child->output_, '\n')) {
        std::string host;
        int port = 0;
        if (ParseListeningLine(std::string(line), &host, &port)) {
          if (host == "0.0.0.0" || host == "[::]" || host == "::") host = "127.0.0.1";
          child->address_ = absl::StrCat(host, ":", port);
          child->port_ = port;
          return child;
        }
      }
    }
    if (!child->Running()) {
      return absl::UnavailableError(
          absl::StrCat(name, " exited before listening: ", child->Output()));
    }
    if (absl::Now() > deadline) {
      std::string out = child->Output();
      child->Kill();
      return absl::DeadlineExceededError(
          absl::StrCat(name, " printed no 'listening on HOST:PORT' line within ",
                       absl::FormatDuration(options.listen_timeout), ": ", out));
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
}

ChildProcess::ChildProcess(std::string name, pid_t pid, pid_t pgid, int out_fd, bool echo)
    : name_(std::move(name)), pid_(pid), pgid_(pgid), out_fd_(out_fd), echo_(echo) {
  reader_ = std::thread([this] { ReadLoop(); });
}

ChildProcess::~ChildProcess() {
  Stop();
  if (reader_.joinable()) reader_.join();
  close(out_fd_);
}

void ChildProcess::ReadLoop() {
  char buf[4096];
  std::string partial;
  while (true) {
    const ssize_t n = read(out_fd_, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // every writer closed: the child (and its children) exited
    std::lock_guard<std::mutex> lock(mu_);
    output_.append(buf, n);
    if (output_.size() > (size_t{8} << 20)) output_.erase(0, output_.size() / 2);
    if (echo_) {
      partial.append(buf, n);
      size_t nl;
      while ((nl = partial.find('\n')) != std::string::npos) {
        std::fprintf(stderr, "[%s] %s\n", name_.c_str(), partial.substr(0, nl).c_str());
        partial.erase(0, nl + 1);
      }
    }
  }
}

bool ChildProcess::Reap(bool block) {
  std::lock_guard<std::mutex> lock(mu_);
  if (reaped_) return true;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, block ? 0 : WNOHANG);
  if (r == pid_ || (r < 0 && errno == ECHILD)) {
    reaped_ = true;
    exit_status_ = r == pid_ ? status : -1;
    return true;
  }
  return false;
}

bool ChildProcess::Running() { return !Reap(/*block=*/false); }

int ChildProcess::Stop(absl::Duration grace) {
  if (Running()) {
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + grace;
    while (!Reap(false) && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(5));
    if (!Reap(false)) {
      kill(pid_, SIGKILL);
      Reap(true);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  return exit_status_;
}

void ChildProcess::Kill() {
  if (Running()) {
    kill(pid_, SIGKILL);
    Reap(true);
  }
}

std::string ChildProcess::Output() {
  std::lock_guard<std::mutex> lock(mu_);
  return output_;
}

}  // namespace kvq

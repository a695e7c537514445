// A child process: one `kvq serve ...` service on loopback (the launcher, the
// benchmarks and the integration tests start them).
// The child dies with the launcher (PR_SET_PDEATHSIG) and runs in the process
// group the launcher gives it, so a whole cluster stops together even when
// the launcher is killed with SIGKILL.
//
//   KVQ_ASSIGN_OR_RETURN(auto store, ChildProcess::Start(
//       "store", {"/path/to/kvq", "serve", "store", "--port=0"}, opts));
//   std::string addr = store->address();   // "127.0.0.1:PORT"
//   store->Stop();                         // SIGTERM, then SIGKILL after grace
//
// Threads: PR_SET_PDEATHSIG fires when the *thread* that forked exits, so
// start children from a thread that outlives them (e.g. main).
#ifndef KVQ_COMMON_CHILD_PROCESS_H_
#define KVQ_COMMON_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvq {

struct ChildOptions {
  // How long to wait for the child's "listening on HOST:PORT" line.
  absl::Duration listen_timeout = absl::Seconds(20);
  // Process group to join; 0 makes the child the leader of a new group.
  pid_t process_group = 0;
  // Echo the child's output to our stderr, each line prefixed "[name] ".
  bool echo_output = false;
  // "NAME=VALUE" entries added to the child's environment where NAME is not
  // set in ours (ours wins: a user's setting is never overridden).
  std::vector<std::string> env_defaults;
};

class ChildProcess {
 public:
  // Forks and execs argv (argv[0] is a path). Reads the child's stdout and
  // stderr; the first line containing "listening on HOST:PORT" gives the
  // address. UNAVAILABLE if the child exits first, DEADLINE_EXCEEDED if no
  // such line comes in time (the child is killed in both cases); INTERNAL if
  // fork or pipe fails.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Start(
      const std::string& name, const std::vector<std::string>& argv,
      const ChildOptions& options);

  ~ChildProcess();  // Stop()

  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  pid_t process_group() const { return pgid_; }
  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  int port() const { return port_; }

  // SIGTERM, then SIGKILL if the child is still alive after `grace`; reaps
  // it. Returns its exit status as waitpid reports it (or -1 if already
  // reaped). Safe to call twice.
  int Stop(absl::Duration grace = absl::Seconds(5));
  // SIGKILL now and reap (tests kill workers mid-request with it).
  void Kill();
  // Whether the child has not exited yet.
  bool Running();
  // Everything the child has written so far (stdout and stderr).
  std::string Output();

 private:
  ChildProcess(std::string name, pid_t pid, pid_t pgid, int out_fd, bool echo);
  void ReadLoop();
  bool Reap(bool block);

  // Constant after construction.
  const std::string name_;
  const pid_t pid_;
  const pid_t pgid_;
  const int out_fd_;
  const bool echo_;
  std::string address_;
  int port_ = 0;

  std::mutex mu_;
  std::string output_;    // guarded by mu_
  bool reaped_ = false;   // guarded by mu_
  int exit_status_ = -1;  // guarded by mu_
  std::thread reader_;
};

// Parses "...listening on HOST:PORT..." from one line; false when absent.
bool ParseListeningLine(const std::string& line, std::string* host, int* port);

}  // namespace kvq

#endif  // KVQ_COMMON_CHILD_PROCESS_H_

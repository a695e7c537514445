// Children die with the launcher: a launcher process that is SIGKILLed (no
// chance to clean up) takes its services with it (PR_SET_PDEATHSIG).
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/child_process.h"
#include "gtest/gtest.h"

namespace kvq::launcher {
namespace {

// Alive and not a zombie.
bool Alive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string pid_s, comm, state;
  if (!(stat >> pid_s >> comm >> state)) return false;
  return state != "Z" && state != "X";
}

TEST(LauncherDeathTest, ChildrenDieWhenTheLauncherIsKilled) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t launcher = fork();
  ASSERT_GE(launcher, 0);
  if (launcher == 0) {
    // The "launcher": starts two services, reports their pids, waits forever.
    close(fds[0]);
    std::vector<std::unique_ptr<ChildProcess>> children;
    for (int i = 0; i < 2; ++i) {
      auto c = ChildProcess::Start(
          "svc",
          {"/bin/sh", "-c", "echo 'kvq svc listening on 127.0.0.1:9'; exec sleep 60"},
          {});
      if (!c.ok()) _exit(1);
      const pid_t pid = (*c)->pid();
      (void)!write(fds[1], &pid, sizeof(pid));
      children.push_back(std::move(*c));
    }
    while (true) pause();
  }
  close(fds[1]);
  pid_t pids[2];
  ASSERT_EQ(read(fds[0], &pids[0], sizeof(pid_t)), static_cast<ssize_t>(sizeof(pid_t)));
  ASSERT_EQ(read(fds[0], &pids[1], sizeof(pid_t)), static_cast<ssize_t>(sizeof(pid_t)));
  close(fds[0]);
  EXPECT_TRUE(Alive(pids[0]));
  EXPECT_TRUE(Alive(pids[1]));

  kill(launcher, SIGKILL);
  waitpid(launcher, nullptr, 0);
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while ((Alive(pids[0]) || Alive(pids[1])) && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_FALSE(Alive(pids[0]));
  EXPECT_FALSE(Alive(pids[1]));
}

}  // namespace
}  // namespace kvq::launcher

#include "common/child_process.h"

#include <signal.h>
#include <stdlib.h>

#include <string>

#include "gtest/gtest.h"

namespace kvq {
namespace {

TEST(ParseListeningLineTest, FindsHostAndPort) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(ParseListeningLine("kvq store listening on 127.0.0.1:4567", &host, &port));
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 4567);
  ASSERT_TRUE(ParseListeningLine("x listening on [::1]:80 (metrics 9)", &host, &port));
  EXPECT_EQ(host, "[::1]");
  EXPECT_EQ(port, 80);
  EXPECT_FALSE(ParseListeningLine("listening soon", &host, &port));
  EXPECT_FALSE(ParseListeningLine("listening on 127.0.0.1:0", &host, &port));
  EXPECT_FALSE(ParseListeningLine("listening on 127.0.0.1:x", &host, &port));
}

TEST(ChildProcessTest, ReadsAddressAndStopsWithSigterm) {
  auto child = ChildProcess::Start(
      "sh",
      {"/bin/sh", "-c", "echo 'kvq test listening on 127.0.0.1:4321'; exec sleep 60"},
      {});
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->address(), "127.0.0.1:4321");
  EXPECT_EQ((*child)->port(), 4321);
  EXPECT_TRUE((*child)->Running());
  const int status = (*child)->Stop(absl::Seconds(5));
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGTERM);
  EXPECT_FALSE((*child)->Running());
}

TEST(ChildProcessTest, EscalatesToSigkill) {
  auto child = ChildProcess::Start(
      "stubborn",
      {"/bin/sh", "-c",
       "trap '' TERM; echo 'listening on 127.0.0.1:1'; while :; do sleep 1; done"},
      {});
  ASSERT_TRUE(child.ok()) << child.status();
  const int status = (*child)->Stop(absl::Milliseconds(200));
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(ChildProcessTest, ExitBeforeListeningIsUnavailable) {
  auto child = ChildProcess::Start("fails", {"/bin/sh", "-c", "echo boom; exit 3"}, {});
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(child.status().message().find("boom"), std::string::npos);
}

TEST(ChildProcessTest, SilentChildTimesOut) {
  ChildOptions opts;
  opts.listen_timeout = absl::Milliseconds(100);
  auto child = ChildProcess::Start("silent", {"/bin/sh", "-c", "exec sleep 60"}, opts);
  ASSERT_FALSE(child.ok());
  EXPECT_EQ(child.status().code(), absl::StatusCode::kDeadlineExceeded);
}

// env_defaults reach the child only where our environment leaves the name
// unset; a malformed entry is refused before anything starts.
TEST(ChildProcessTest, EnvDefaultsNeverOverrideOurs) {
  ASSERT_EQ(setenv("KVQ_TEST_OURS", "5151", 1), 0);
  ASSERT_EQ(unsetenv("KVQ_TEST_DEFAULT"), 0);
  ChildOptions opts;
  opts.env_defaults = {"KVQ_TEST_DEFAULT=4242", "KVQ_TEST_OURS=1"};
  for (const char* var : {"KVQ_TEST_DEFAULT", "KVQ_TEST_OURS"}) {
    auto child = ChildProcess::Start(
        "env",
        {"/bin/sh", "-c",
         std::string("echo \"listening on 127.0.0.1:$") + var + "\"; exec sleep 60"},
        opts);
    ASSERT_TRUE(child.ok()) << child.status();
    EXPECT_EQ((*child)->port(), std::string(var) == "KVQ_TEST_OURS" ? 5151 : 4242) << var;
  }
  opts.env_defaults = {"NO_EQUALS_SIGN"};
  auto bad = ChildProcess::Start("bad", {"/bin/true"}, opts);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  unsetenv("KVQ_TEST_OURS");
}

TEST(ChildProcessTest, JoinsGivenProcessGroup) {
  auto first = ChildProcess::Start(
      "a", {"/bin/sh", "-c", "echo 'listening on 127.0.0.1:2'; exec sleep 60"}, {});
  ASSERT_TRUE(first.ok());
  ChildOptions opts;
  opts.process_group = (*first)->process_group();
  auto second = ChildProcess::Start(
      "b", {"/bin/sh", "-c", "echo 'listening on 127.0.0.1:3'; exec sleep 60"}, opts);
  ASSERT_TRUE(second.ok());
  EXPECT_EQ((*first)->process_group(), (*first)->pid());
  EXPECT_EQ(getpgid((*second)->pid()), (*first)->pid());
}

}  // namespace
}  // namespace kvq

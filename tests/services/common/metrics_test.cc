#include "services/common/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/common/http_get.h"

namespace kvq::services {
namespace {

// The value of the sample line `name{role="store"} V` in `text`, or NaN.
double Sample(const std::string& text, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name + "{role=\"store\"} ")) continue;
    double v = 0;
    if (absl::SimpleAtod(line, &v)) return v;
  }
  return std::nan("");
}

TEST(MetricsEndpointTest, ServesProcessMetricsWithTheRoleLabel) {
  auto endpoint = MetricsEndpoint::Start({.role = "store", .port = 0});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  std::string status;
  const std::string body =
      testing::LoopbackHttpGet((*endpoint)->port(), "/metrics", &status);
  ASSERT_TRUE(absl::StrContains(status, "200 OK")) << status;
  EXPECT_TRUE(absl::StrContains(body, "# TYPE process_cpu_seconds_total counter"))
      << body;
  EXPECT_TRUE(absl::StrContains(body, "# TYPE process_resident_memory_bytes gauge"));

  const double rss = Sample(body, "process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20) << body;  // a test binary holds more than 1 MiB
  EXPECT_LT(rss, 64.0 * (1 << 30));
  EXPECT_GE(Sample(body, "process_virtual_memory_bytes"), rss);
  const double fds = Sample(body, "process_open_fds");
  EXPECT_GE(fds, 4) << body;  // stdin/out/err, the listening socket
  EXPECT_LE(fds, Sample(body, "process_max_fds"));
  EXPECT_GE(Sample(body, "process_threads"), 2) << body;  // main and the HTTP thread
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  const double start = Sample(body, "process_start_time_seconds");
  EXPECT_LE(start, now + 1) << body;
  EXPECT_GT(start, now - 3600) << body;  // this test started within the hour

  // CPU time grows with work done: 0.3 s of this process's CPU (by the
  // kernel's own clock, however busy the machine) shows as at least 0.2 s.
  const double cpu0 = Sample((*endpoint)->Text(), "process_cpu_seconds_total");
  const auto process_cpu = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  volatile double x = 0;
  for (const double until = process_cpu() + 0.3; process_cpu() < until;) {
    x = x + std::sqrt(x + 1.0);
  }
  const double cpu1 = Sample((*endpoint)->Text(), "process_cpu_seconds_total");
  EXPECT_GE(cpu0, 0);
  EXPECT_GT(cpu1, cpu0 + 0.2) << cpu0 << " " << cpu1;
}

// A TCP connection to 127.0.0.1:port (-1 on failure).
int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Issue 14: clients that send half a request and stall, or never read the
// answer, do not hold up anyone else's scrape.
TEST(MetricsEndpointTest, SlowClientsDoNotStallScrapes) {
  auto endpoint = MetricsEndpoint::Start({.role = "store", .port = 0});
  ASSERT_TRUE(endpoint.ok()) << endpoint.status();
  const int port = (*endpoint)->port();
  std::vector<int> slow;
  for (int i = 0; i < 8; ++i) {
    const int fd = ConnectLoopback(port);
    ASSERT_GE(fd, 0);
    const std::string half = i % 2 == 0 ? "GET /metr" : "GET /metrics HTTP/1.1\r\n\r\n";
    ASSERT_EQ(send(fd, half.data(), half.size(), 0), static_cast<ssize_t>(half.size()));
    slow.push_back(fd);  // never finishes its request, or never reads
  }
  for (int i = 0; i < 5; ++i) {
    const absl::Time start = absl::Now();
    std::string status;
    const std::string body = testing::LoopbackHttpGet(port, "/metrics", &status);
    EXPECT_TRUE(absl::StrContains(status, "200 OK")) << status;
    EXPECT_TRUE(absl::StrContains(body, "process_open_fds"));
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  }
  // More connections than the endpoint keeps: the oldest go, scrapes work.
  for (int i = 0; i < 80; ++i) {
    const int fd = ConnectLoopback(port);
    if (fd >= 0) slow.push_back(fd);
  }
  absl::SleepFor(absl::Milliseconds(300));
  std::string status;
  testing::LoopbackHttpGet(port, "/metrics", &status);
  EXPECT_TRUE(absl::StrContains(status, "200 OK")) << status;
  for (int fd : slow) close(fd);
}

TEST(RpcMetricsTest, CodeLabelsComeFromAClosedSet) {
  EXPECT_EQ(StatusCodeName(absl::StatusCode::kDataLoss), "DATA_LOSS");
  EXPECT_EQ(StatusCodeName(static_cast<absl::StatusCode>(12345)), "UNKNOWN");
  EXPECT_EQ(StatusCodeName(static_cast<absl::StatusCode>(-1)), "UNKNOWN");
}

}  // namespace
}  // namespace kvq::services

// Failures with real processes: a prefill worker killed mid-request (the
// router retries on the other one; the store never shows a partial block), a
// decode worker killed mid-stream (the client gets UNAVAILABLE promptly), a
// client that cancels (the decode worker frees its KV memory), and requests
// beyond the decode KV budget (they wait, are counted, then run).
#include <atomic>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/integration/serving_test_util.h"

namespace kvq::testing {
namespace {

TEST(ServingFaultsTest, PrefillKilledMidRequestIsRetriedOnTheOtherWorker) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.prefill_workers = 2;
  // 5 layers x 150 ms: time to kill a worker while it computes.
  o.prefill_flags.push_back("--debug_layer_delay=150ms");
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;

  StreamResult r;
  std::thread client([&] {
    r = RouterGenerate(c.router_address(), GreedyRequest(Prompt(100, 1), "kivi2", 16));
  });
  int victim = -1;
  const absl::Time until = absl::Now() + absl::Seconds(5);
  while (victim < 0 && absl::Now() < until) {
    for (int i = 0; i < 2; ++i) {
      if (PrefillStats(c.prefill_addresses()[i]).running() > 0) victim = i;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_GE(victim, 0) << "no prefill worker picked the request up";
  absl::SleepFor(absl::Milliseconds(200));  // mid-way through its layers
  c.prefill(victim)->Kill();
  client.join();
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.first.prefill_attempts(), 2u);
  EXPECT_EQ(r.first.prefill_worker(), c.prefill_addresses()[1 - victim]);
  EXPECT_EQ(r.tokens.size(), 16u);
  // Only the surviving attempt's blocks are visible, all of them complete.
  const v1::StoreStatsResponse s = StoreStats(c.store_address());
  EXPECT_EQ(s.blocks(), r.last.prefill().blocks_total());
  EXPECT_EQ(s.puts(), r.last.prefill().blocks_total());
}

TEST(ServingFaultsTest, DecodeKilledGivesUnavailablePromptly) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.decode_flags.push_back("--debug_step_delay=20ms");  // 200 tokens: 4 s
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;

  OpenRouterStream a(c.router_address(), GreedyRequest(Prompt(40, 2), "kivi2", 200), 5);
  ASSERT_GE(a.tokens(), 5);
  const absl::Time killed = absl::Now();
  c.decode(0)->Kill();
  const grpc::Status status = a.Drain();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  EXPECT_LT(absl::Now() - killed, absl::Seconds(2));
}

TEST(ServingFaultsTest, CancelFreesDecodeMemoryAndBudgetMakesRequestsWait) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.decode_flags.push_back("--debug_step_delay=10ms");
  // Room for one sequence of 40 + 200 tokens in kivi2 (3 2-bit blocks of 5760
  // bytes + 5 fp16 blocks of 20480 = 119680 bytes), not for a second one.
  o.decode_kv_budget_bytes = 150000;
  auto cluster = launcher::Cluster::Start(o);
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;
  const std::string decode = c.decode_addresses()[0];

  OpenRouterStream a(c.router_address(), GreedyRequest(Prompt(40, 3), "kivi2", 200), 3);
  ASSERT_GE(a.tokens(), 3);

  // A second request does not fit beside the first: it waits, counted.
  StreamResult second;
  std::thread waiter([&] {
    second =
        RouterGenerate(c.router_address(), GreedyRequest(Prompt(40, 4), "kivi2", 20));
  });
  v1::WorkerStats during;
  for (absl::Time until = absl::Now() + absl::Seconds(3); absl::Now() < until;) {
    during = DecodeStats(decode);
    if (during.waiting() > 0) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(during.waiting(), 1u) << during.DebugString();
  EXPECT_EQ(during.running(), 1u);
  EXPECT_GT(during.kv_bytes_used(), 0u);
  EXPECT_EQ(during.requests_waited_total(), 1u);

  // Cancelling the first frees its memory, and the waiting one runs.
  a.Cancel();
  EXPECT_EQ(a.Drain().error_code(), grpc::StatusCode::CANCELLED);
  waiter.join();
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  v1::WorkerStats after;
  for (absl::Time until = absl::Now() + absl::Seconds(3); absl::Now() < until;) {
    after = DecodeStats(decode);
    if (after.kv_bytes_used() == 0 && after.requests_cancelled_total() == 1) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(after.kv_bytes_used(), 0u);
  EXPECT_EQ(after.running(), 0u);
  EXPECT_EQ(after.requests_cancelled_total(), 1u);
}

}  // namespace
}  // namespace kvq::testing

#include "services/decode/kv_budget.h"

#include <atomic>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace kvq::decode {
namespace {

TEST(KvBudgetTest, ReservesAndReleases) {
  KvBudget budget(100);
  {
    auto a = budget.Reserve(60, nullptr);
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(budget.stats().used_bytes, 60u);
    EXPECT_EQ(budget.stats().holders, 1u);
    auto b = budget.Reserve(40, nullptr);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(budget.stats().used_bytes, 100u);
  }
  EXPECT_EQ(budget.stats().used_bytes, 0u);
  EXPECT_EQ(budget.stats().holders, 0u);
  EXPECT_EQ(budget.stats().waited_total, 0u);
}

TEST(KvBudgetTest, MoreThanTheWholeBudgetIsResourceExhausted) {
  KvBudget budget(100);
  auto r = budget.Reserve(101, nullptr);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("101"), std::string::npos);
}

TEST(KvBudgetTest, WaitsUntilReleasedAndCountsTheWait) {
  KvBudget budget(100);
  auto first = budget.Reserve(80, nullptr);
  ASSERT_TRUE(first.ok());
  std::atomic<bool> got{false};
  std::thread t([&] {
    auto second = budget.Reserve(50, nullptr);
    EXPECT_TRUE(second.ok());
    got = true;
  });
  while (budget.stats().waiting == 0) absl::SleepFor(absl::Milliseconds(1));
  EXPECT_FALSE(got.load());
  first->Release();
  t.join();
  EXPECT_TRUE(got.load());
  EXPECT_EQ(budget.stats().waited_total, 1u);
  EXPECT_EQ(budget.stats().used_bytes, 0u);
}

TEST(KvBudgetTest, FirstComeFirstServed) {
  KvBudget budget(100);
  auto hold = budget.Reserve(90, nullptr);
  ASSERT_TRUE(hold.ok());
  std::atomic<int> order{0};
  int big_at = -1, small_at = -1;
  std::thread big([&] {
    auto r = budget.Reserve(60, nullptr);
    big_at = order++;
  });
  while (budget.stats().waiting < 1) absl::SleepFor(absl::Milliseconds(1));
  // 5 bytes would fit now, but the earlier request goes first.
  std::thread small([&] {
    auto r = budget.Reserve(5, nullptr);
    small_at = order++;
  });
  while (budget.stats().waiting < 2) absl::SleepFor(absl::Milliseconds(1));
  hold->Release();
  big.join();
  small.join();
  EXPECT_EQ(big_at, 0);
  EXPECT_EQ(small_at, 1);
}

TEST(KvBudgetTest, CancelledWaiterLeavesTheQueue) {
  KvBudget budget(10);
  auto hold = budget.Reserve(10, nullptr);
  std::atomic<bool> cancel{false};
  absl::Status status;
  std::thread t(
      [&] { status = budget.Reserve(5, [&] { return cancel.load(); }).status(); });
  while (budget.stats().waiting == 0) absl::SleepFor(absl::Milliseconds(1));
  cancel = true;
  t.join();
  EXPECT_EQ(status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(budget.stats().waiting, 0u);
  EXPECT_EQ(budget.stats().used_bytes, 10u);
}

}  // namespace
}  // namespace kvq::decode

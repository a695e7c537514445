#include "services/router/router_service.h"

#include <vector>

#include "gtest/gtest.h"

namespace kvq::router {
namespace {

TEST(PickLeastLoadedTest, FewestInFlightWins) {
  EXPECT_EQ(PickLeastLoaded({3, 1, 2}, -1, 0), 1);
  EXPECT_EQ(PickLeastLoaded({0, 0, 5}, -1, 0), 0);
}

TEST(PickLeastLoadedTest, TiesRotateFromStart) {
  EXPECT_EQ(PickLeastLoaded({1, 1, 1}, -1, 0), 0);
  EXPECT_EQ(PickLeastLoaded({1, 1, 1}, -1, 1), 1);
  EXPECT_EQ(PickLeastLoaded({1, 1, 1}, -1, 2), 2);
  EXPECT_EQ(PickLeastLoaded({1, 0, 0}, -1, 2), 2);
}

TEST(PickLeastLoadedTest, ExcludesTheFailedWorker) {
  EXPECT_EQ(PickLeastLoaded({0, 5}, 0, 0), 1);
  EXPECT_EQ(PickLeastLoaded({0}, 0, 0), -1);
  EXPECT_EQ(PickLeastLoaded({}, -1, 0), -1);
}

TEST(RetryTest, OnlyWorkerFailuresAreRetried) {
  EXPECT_TRUE(IsRetryablePrefillError(grpc::StatusCode::UNAVAILABLE));
  EXPECT_TRUE(IsRetryablePrefillError(grpc::StatusCode::INTERNAL));
  EXPECT_FALSE(IsRetryablePrefillError(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_FALSE(IsRetryablePrefillError(grpc::StatusCode::NOT_FOUND));
  EXPECT_FALSE(IsRetryablePrefillError(grpc::StatusCode::RESOURCE_EXHAUSTED));
  EXPECT_FALSE(IsRetryablePrefillError(grpc::StatusCode::DEADLINE_EXCEEDED));
}

TEST(RouterServiceTest, CreateNeedsTokenizerAndWorkers) {
  EXPECT_EQ(
      RouterService::Create({.prefill = {"a:1"}, .decode = {"b:2"}}).status().code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvq::router

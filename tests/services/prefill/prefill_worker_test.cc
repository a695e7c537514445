// The prefill worker's core, step by step, over the real test model and the
// real store service in process (no gRPC service of its own in the way):
// the plan follows the residual rule and refuses bad requests, the prefix
// is reused from the store, the pushed blocks are committed, the first token
// is the model's, and a cancelled request stops.
#include "services/prefill/prefill_worker.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"
#include "model/generate.h"
#include "services/serving/kv_plan.h"
#include "tests/services/serving/worker_test_env.h"

namespace kvq::prefill {
namespace {

using serving::PrefillRequest;

class PrefillWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.ok());
    worker_ = std::make_unique<PrefillWorker>(env_.model(), env_.transformer(),
                                              env_.store(), nullptr, PrefillOptions{});
  }

  // A 70-token prompt (3 blocks of 32: 2 full, 1 partial) in `kv`.
  PrefillRequest Request(const std::string& kv, int max_tokens = 8) {
    PrefillRequest r;
    r.tokens = env_.Encode(
        "Once upon a time, there was a little girl named Lily. She loved to play "
        "outside in the park with her friends. One day, she saw a big red ball");
    r.tokens.resize(70, 300);
    r.kv = kv;
    r.generation.max_tokens = max_tokens;
    return r;
  }

  serving::testing::WorkerTestEnv env_;
  std::unique_ptr<PrefillWorker> worker_;
};

TEST_F(PrefillWorkerTest, PlanFollowsTheResidualRuleAndChainsTheKeys) {
  auto plan = worker_->MakePlan(Request("kivi:bits=2,block=32,residual=32"));
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_EQ(plan->encodings.size(), 3u);
  // 70 >= (0+1)*32 + 32: block 0 quantized; block 1 inside the window; 2 partial.
  EXPECT_FALSE(plan->encodings[0].is_fp16());
  EXPECT_TRUE(plan->encodings[1].is_fp16());
  EXPECT_TRUE(plan->encodings[2].is_fp16());
  EXPECT_EQ(plan->block_tokens(2), 6);
  EXPECT_EQ(plan->keys,
            serving::PlanKeys(plan->tokens, env_.model().id, plan->encodings));
}

TEST_F(PrefillWorkerTest, PlanRefusesBadRequests) {
  PrefillRequest other_model = Request("kivi2");
  other_model.model_id = env_.model().id + 1;
  EXPECT_EQ(worker_->MakePlan(other_model).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker_->MakePlan(Request("fp32")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker_->MakePlan(Request("kivi3")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker_->MakePlan(Request("kivi2", /*max_tokens=*/500)).status().code(),
            absl::StatusCode::kInvalidArgument);  // 70 + 500 > seq_len 512
  PrefillRequest empty = Request("kivi2");
  empty.tokens.clear();
  EXPECT_EQ(worker_->MakePlan(empty).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PrefillWorkerTest, ReusePrefixFindsWhatAnEarlierPrefillCommitted) {
  const PrefillRequest request = Request("kivi:bits=2,block=32,residual=0");
  auto plan = worker_->MakePlan(request);
  ASSERT_TRUE(plan.ok());
  auto cold = worker_->ReusePrefix(*plan);
  ASSERT_TRUE(cold.ok()) << cold.status();
  EXPECT_EQ(cold->reused, 0);
  EXPECT_EQ(cold->cache->n_tokens(), 0);

  ASSERT_TRUE(worker_->Run(request, nullptr).ok());
  auto warm = worker_->ReusePrefix(*plan);
  ASSERT_TRUE(warm.ok()) << warm.status();
  EXPECT_EQ(warm->reused, 2);  // (70 - 1) / 32: the last token is always computed
  EXPECT_EQ(warm->lost, 0);
  EXPECT_EQ(warm->cache->n_tokens(), 64);
  EXPECT_GT(warm->fetched_bytes, 0u);
}

TEST_F(PrefillWorkerTest, RunCommitsEveryBlockAndSamplesTheModelsFirstToken) {
  const PrefillRequest request = Request("kivi2");
  auto result = worker_->Run(request, nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->handle.model_id, env_.model().id);
  EXPECT_EQ(result->handle.tokens, request.tokens);
  ASSERT_EQ(result->handle.blocks.size(), 3u);
  EXPECT_EQ(result->stats.blocks_total, 3);
  EXPECT_EQ(result->stats.tokens_computed, 70u);
  EXPECT_GT(result->stats.bytes_pushed, 0u);
  EXPECT_FALSE(result->handle.leases.empty());  // a decode follows (max_tokens 8)
  for (const serving::HandleBlock& b : result->handle.blocks) {
    EXPECT_TRUE(env_.engine().Get({b.key})[0].ok());
  }
  // The same first token as `kvq generate` with the same (greedy) sampling.
  auto mode = model::ParseKvMode(result->handle.kv);
  ASSERT_TRUE(mode.ok());
  auto generated = model::Generate(env_.transformer(), request.tokens,
                                   {.steps = 1, .kv = *mode, .bos_id = -1, .eos_id = -1});
  ASSERT_TRUE(generated.ok());
  ASSERT_EQ(generated->size(), 1u);
  EXPECT_EQ(result->first_token, (*generated)[0]);
  EXPECT_EQ(worker_->stats().requests, 1u);
}

TEST_F(PrefillWorkerTest, OneTokenTakesNoHandleLease) {
  auto result = worker_->Run(Request("kivi2", /*max_tokens=*/1), nullptr);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->handle.leases.empty());
}

TEST_F(PrefillWorkerTest, CancelledStopsBetweenLayers) {
  auto result = worker_->Run(Request("kivi2"), [] { return true; });
  EXPECT_EQ(result.status().code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace kvq::prefill

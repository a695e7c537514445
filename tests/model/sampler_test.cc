#include "model/sampler.h"

#include <cmath>
#include <map>
#include <vector>

#include "gtest/gtest.h"

namespace kvq::model {
namespace {

TEST(SamplerTest, GreedyIsArgmaxLowestIdOnTies) {
  EXPECT_EQ(SampleToken({0.1f, 3.0f, 3.0f, -1.0f}, {}, 0), 1);
  EXPECT_EQ(SampleToken({5.0f}, {}, 7), 0);
}

TEST(SamplerTest, SameSeedAndStepSameToken) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = (i % 7) * 0.3f;
  Sampling s{.temperature = 1.0f, .seed = 42};
  for (uint64_t step = 0; step < 20; ++step) {
    EXPECT_EQ(SampleToken(logits, s, step), SampleToken(logits, s, step));
  }
  // Different steps draw differently (not all 20 the same token).
  std::map<int, int> seen;
  for (uint64_t step = 0; step < 20; ++step) ++seen[SampleToken(logits, s, step)];
  EXPECT_GT(seen.size(), 1u);
}

TEST(SamplerTest, TopKAndTopPRestrictTheCandidates) {
  const std::vector<float> logits = {0.0f, 1.0f, 5.0f, 4.9f, 0.5f};
  for (uint64_t step = 0; step < 200; ++step) {
    const int k = SampleToken(logits, {.temperature = 1.0f, .top_k = 2, .seed = 1}, step);
    EXPECT_TRUE(k == 2 || k == 3) << k;
    const int p =
        SampleToken(logits, {.temperature = 1.0f, .top_p = 0.3f, .seed = 1}, step);
    EXPECT_EQ(p, 2);  // the top token alone holds more than 30%
  }
}

TEST(SamplerTest, FollowsTheDistribution) {
  const std::vector<float> logits = {0.0f, std::log(3.0f)};  // p = 1/4, 3/4
  int ones = 0;
  for (uint64_t step = 0; step < 4000; ++step) {
    ones += SampleToken(logits, {.temperature = 1.0f, .seed = 9}, step);
  }
  EXPECT_NEAR(ones / 4000.0, 0.75, 0.03);
}

TEST(SamplerTest, ValidateRejectsBadParameters) {
  EXPECT_FALSE(Sampling{.temperature = -1}.Validate().ok());
  EXPECT_FALSE(Sampling{.temperature = NAN}.Validate().ok());
  EXPECT_FALSE(Sampling{.top_p = 1.5f}.Validate().ok());
  EXPECT_FALSE(Sampling{.top_k = -2}.Validate().ok());
  EXPECT_TRUE(
      (Sampling{.temperature = 0.7f, .top_p = 0.9f, .top_k = 40}.Validate().ok()));
}

}  // namespace
}  // namespace kvq::model

// The disaggregated path (router -> prefill -> store -> decode, each its own
// process) generates exactly what the colocated mode (one decode process,
// no store) generates: with nothing quantized it is the fp16 output and the
// reference text; with kivi2 at R=0 and R=32 the 2-bit blocks that crossed
// the store are the ones decode attends over, token for token.
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/paths.h"
#include "gtest/gtest.h"
#include "tests/integration/serving_test_util.h"

namespace kvq::testing {
namespace {

// ~110 tokens: several full blocks of 32.
constexpr char kStory[] =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in "
    "the park with her friends. One day, she saw a big red ball under a tree. She ran to "
    "get it, but a small dog took the ball and ran away. Lily was sad, but her mom said "
    "they could find the dog together.";

class ServingEquivalenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = launcher::Cluster::Start(TestClusterOptions());
    ASSERT_TRUE(c.ok()) << c.status();
    disaggregated_ = c->release();
    launcher::ClusterOptions colocated = TestClusterOptions();
    colocated.with_store = false;
    colocated.prefill_workers = 0;  // the router runs colocated
    auto d = launcher::Cluster::Start(colocated);
    ASSERT_TRUE(d.ok()) << d.status();
    colocated_ = d->release();
  }
  static void TearDownTestSuite() {
    delete disaggregated_;
    delete colocated_;
  }

  // The prompt's token ids as the router encodes them.
  static std::vector<int> Encode(const std::string& text) {
    v1::GenerateRequest req;
    req.set_text(text);
    req.mutable_sampling()->set_max_tokens(1);
    StreamResult r = RouterGenerate(disaggregated_->router_address(), req);
    EXPECT_TRUE(r.status.ok()) << r.status.error_message();
    return {r.first.prompt_tokens().begin(), r.first.prompt_tokens().end()};
  }

  static launcher::Cluster* disaggregated_;
  static launcher::Cluster* colocated_;
};

launcher::Cluster* ServingEquivalenceTest::disaggregated_ = nullptr;
launcher::Cluster* ServingEquivalenceTest::colocated_ = nullptr;

TEST_F(ServingEquivalenceTest, EmptyPromptGreedyMatchesReferenceText) {
  std::ifstream f(DefaultModelDir() + "/greedy_empty_200.txt");
  ASSERT_TRUE(f.good());
  std::stringstream expected;
  expected << f.rdbuf();

  // R = 512 > prompt + output: nothing is ever quantized.
  v1::GenerateRequest req;
  req.set_text("");
  req.mutable_cache()->set_kv("kivi:bits=2,residual=512");
  req.mutable_sampling()->set_max_tokens(200);
  req.set_return_text(true);
  StreamResult r = RouterGenerate(disaggregated_->router_address(), req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.text + "\n", expected.str());
  EXPECT_EQ(r.last.prefill().blocks_total(), 1u);

  const std::vector<int> prompt(r.first.prompt_tokens().begin(),
                                r.first.prompt_tokens().end());
  StreamResult fp16 =
      ColocatedGenerate(colocated_->decode(0)->address(), prompt, "fp16", 200);
  ASSERT_TRUE(fp16.status.ok()) << fp16.status.error_message();
  EXPECT_EQ(r.tokens, fp16.tokens);

  // The same through the colocated router.
  req.mutable_cache()->set_kv("fp16");
  StreamResult routed = RouterGenerate(colocated_->router_address(), req);
  ASSERT_TRUE(routed.status.ok()) << routed.status.error_message();
  EXPECT_EQ(routed.text + "\n", expected.str());
  EXPECT_EQ(routed.last.decode_bytes_fetched(), 0u);
}

TEST_F(ServingEquivalenceTest, LongPromptUnquantizedMatchesColocatedFp16) {
  const std::vector<int> prompt = Encode(kStory);
  ASSERT_GT(prompt.size(), 96u);
  StreamResult r = RouterGenerate(disaggregated_->router_address(),
                                  GreedyRequest(prompt, "kivi:bits=2,residual=512", 120));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  StreamResult fp16 =
      ColocatedGenerate(colocated_->decode(0)->address(), prompt, "fp16", 120);
  ASSERT_TRUE(fp16.status.ok()) << fp16.status.error_message();
  EXPECT_EQ(r.tokens, fp16.tokens);
  EXPECT_GT(r.tokens.size(), 20u);
  // Nothing quantized: stored as fp16 (whole blocks), compression 1.
  EXPECT_EQ(r.last.prefill().stored_bytes(), r.last.prefill().fp16_equivalent_bytes());
}

class ServingKiviTest : public ServingEquivalenceTest,
                        public ::testing::WithParamInterface<const char*> {};

TEST_P(ServingKiviTest, DisaggregatedMatchesColocatedTokenForToken) {
  const std::string kv = GetParam();
  // A prompt of its own per mode, so nothing is reused from another test:
  // every block is computed here and crosses the store.
  const std::vector<int> prompt = Encode(kv + ". " + kStory);
  StreamResult r =
      RouterGenerate(disaggregated_->router_address(), GreedyRequest(prompt, kv, 150));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  StreamResult colocated =
      ColocatedGenerate(colocated_->decode(0)->address(), prompt, kv, 150);
  ASSERT_TRUE(colocated.status.ok()) << colocated.status.error_message();
  EXPECT_EQ(r.tokens, colocated.tokens);
  EXPECT_GT(r.tokens.size(), 20u);
  // Quantized blocks crossed the store: the prompt's cache is smaller than fp16.
  EXPECT_LT(r.last.prefill().stored_bytes(), r.last.prefill().fp16_equivalent_bytes());
  EXPECT_GT(r.last.decode_bytes_fetched(), 0u);
  if (kv.find("sinks=32") == std::string::npos) {
    EXPECT_EQ(r.last.prefill().blocks_reused(), 0u);
    EXPECT_EQ(r.last.decode_bytes_fetched(), r.last.prefill().bytes_pushed());
  } else {
    // The sink block is an fp16 block, keyed by its tokens and the fp16
    // encoding whatever the mode: Encode()'s request (the default mode keeps
    // the prompt's first block fp16) already stored it, and it is reused.
    EXPECT_EQ(r.last.prefill().blocks_reused(), 1u);
    EXPECT_EQ(r.last.decode_bytes_fetched(),
              r.last.prefill().bytes_pushed() + r.last.prefill().bytes_fetched());
  }
}

// Several store shards, prefill and decode workers (the launcher's
// --store_shards etc.): the same tokens, with the prompt's blocks spread over
// every shard by rendezvous hashing and fetched back from all of them.
TEST_F(ServingEquivalenceTest, ShardedStoreGivesTheSameTokens) {
  launcher::ClusterOptions o = TestClusterOptions();
  o.store_shards = 3;
  o.prefill_workers = 2;
  o.decode_workers = 2;
  auto sharded = launcher::Cluster::Start(o);
  ASSERT_TRUE(sharded.ok()) << sharded.status();
  ASSERT_EQ((*sharded)->store_addresses().size(), 3u);
  const std::string kv = "kivi:bits=2,block=8,residual=0";  // 8-token blocks: many
  const std::vector<int> prompt = Encode("Sharded. " + std::string(kStory));
  StreamResult colocated =
      ColocatedGenerate(colocated_->decode(0)->address(), prompt, kv, 60);
  ASSERT_TRUE(colocated.status.ok()) << colocated.status.error_message();
  for (int round = 0; round < 2; ++round) {  // the second reuses every prefix block
    StreamResult r =
        RouterGenerate((*sharded)->router_address(), GreedyRequest(prompt, kv, 60));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.tokens, colocated.tokens);
    EXPECT_EQ(r.last.decode_bytes_fetched(),
              r.last.prefill().bytes_pushed() + r.last.prefill().bytes_fetched());
    if (round == 1) {
      EXPECT_GT(r.last.prefill().blocks_reused(), 0u);
    }
  }
  uint64_t blocks = 0;
  for (const std::string& shard : (*sharded)->store_addresses()) {
    const v1::StoreStatsResponse s = StoreStats(shard);
    EXPECT_GT(s.blocks(), 0u) << shard;
    blocks += s.blocks();
  }
  EXPECT_GE(blocks, prompt.size() / 8);
}

// --default_kv (the ConfigMap's KVQ_KV): the router fills it into a request
// that names no mode, so the prefill and decode workers use it; a worker's
// own flag applies to requests sent to it directly.
TEST_F(ServingEquivalenceTest, DefaultKvFlagIsTheModeOfRequestsWithoutOne) {
  const std::string kv = "kivi:bits=4,residual=0";
  launcher::ClusterOptions o = TestClusterOptions();
  o.router_flags.push_back("--default_kv=" + kv);
  o.prefill_flags.push_back("--default_kv=kivi8");
  auto c = launcher::Cluster::Start(o);
  ASSERT_TRUE(c.ok()) << c.status();
  const std::vector<int> prompt = Encode("Default. " + std::string(kStory));
  StreamResult r = RouterGenerate((*c)->router_address(), GreedyRequest(prompt, "", 40));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  StreamResult colocated =
      ColocatedGenerate(colocated_->decode(0)->address(), prompt, kv, 40);
  ASSERT_TRUE(colocated.status.ok()) << colocated.status.error_message();
  EXPECT_EQ(r.tokens, colocated.tokens);
  StreamResult two = RouterGenerate((*c)->router_address(),
                                    GreedyRequest(prompt, "kivi:bits=2,residual=0", 1));
  ASSERT_TRUE(two.status.ok()) << two.status.error_message();
  EXPECT_LT(two.last.prefill().stored_bytes(), r.last.prefill().stored_bytes());

  // Straight to the prefill worker: its own --default_kv.
  v1::PrefillRequest direct;
  direct.mutable_tokens()->Add(prompt.begin(), prompt.end());
  direct.mutable_sampling()->set_max_tokens(1);
  v1::PrefillResponse response;
  ASSERT_TRUE(Prefill((*c)->prefill_addresses()[0], direct, &response).ok());
  EXPECT_NE(response.handle().cache().kv().find("bits=8"), std::string::npos)
      << response.handle().cache().kv();

  // A bad mode stops the process at start.
  launcher::ClusterOptions bad = TestClusterOptions();
  bad.with_store = false;
  bad.prefill_workers = 0;
  bad.decode_flags.push_back("--default_kv=kivi3");
  EXPECT_FALSE(launcher::Cluster::Start(bad).ok());
}

INSTANTIATE_TEST_SUITE_P(
    Residual, ServingKiviTest,
    ::testing::Values("kivi:bits=2,residual=0", "kivi:bits=2,residual=32",
                      // Format 2 (issue 15): K/V bits apart, outliers, u8
                      // scales, attention sinks.
                      "kivi:kbits=4,vbits=2,outliers=0.02,scales=u8,residual=0",
                      "kivi:bits=2,koutliers=0.05,sinks=32,residual=0",
                      // Edge layers: layer parts of different sizes stream
                      // through the store.
                      "kivi:bits=2,scales=u8,edge_layers=1,edge_bits=8,residual=0"));

// With int8 (and bf16) weights in both workers (`--weights`), the
// disaggregated path is still the colocated one token for token.
class ServingWeightsTest : public ::testing::TestWithParam<const char*> {};

TEST_P(ServingWeightsTest, DisaggregatedMatchesColocatedTokenForToken) {
  const std::string weights = absl::StrCat("--weights=", GetParam());
  launcher::ClusterOptions options = TestClusterOptions();
  options.prefill_flags.push_back(weights);
  options.decode_flags.push_back(weights);
  auto disaggregated = launcher::Cluster::Start(options);
  ASSERT_TRUE(disaggregated.ok()) << disaggregated.status();
  options.with_store = false;
  options.prefill_workers = 0;
  auto colocated = launcher::Cluster::Start(options);
  ASSERT_TRUE(colocated.ok()) << colocated.status();

  const std::string kv = "kivi:bits=2,residual=0";
  v1::GenerateRequest req;
  req.set_text(kStory);
  req.mutable_cache()->set_kv(kv);
  req.mutable_sampling()->set_max_tokens(100);
  StreamResult r = RouterGenerate((*disaggregated)->router_address(), req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  const std::vector<int> prompt(r.first.prompt_tokens().begin(),
                                r.first.prompt_tokens().end());
  StreamResult c = ColocatedGenerate((*colocated)->decode(0)->address(), prompt, kv, 100);
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  EXPECT_EQ(r.tokens, c.tokens);
  EXPECT_GT(r.tokens.size(), 20u);
}

INSTANTIATE_TEST_SUITE_P(Weights, ServingWeightsTest, ::testing::Values("int8", "bf16"));

}  // namespace
}  // namespace kvq::testing

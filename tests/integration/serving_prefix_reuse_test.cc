// Prefix reuse across requests: a second prompt sharing a long prefix with
// the first fetches the shared blocks from the store and pushes only its new
// ones (store statistics, the prefill worker's kvq_prefix_cache_hits_total).
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/serving_test_util.h"

namespace kvq::testing {
namespace {

TEST(ServingPrefixReuseTest, SecondRequestMovesOnlyNewBlocks) {
  auto cluster = launcher::Cluster::Start(TestClusterOptions());
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  launcher::Cluster& c = **cluster;
  // kivi2 at R=0: the shared blocks are 2-bit blocks.
  const std::string kv = "kivi:bits=2,residual=0";
  std::vector<int> first;
  for (int i = 0; i < 130; ++i) first.push_back(i == 0 ? 1 : 259 + (i * 37) % 250);
  std::vector<int> second = first;
  for (int i = 0; i < 40; ++i) second.push_back(300 + i);

  StreamResult a = RouterGenerate(c.router_address(), GreedyRequest(first, kv, 8));
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  const v1::PrefillStats& pa = a.last.prefill();
  EXPECT_EQ(pa.blocks_total(), 5u);  // 130 tokens: 4 full blocks + 2 tokens
  EXPECT_EQ(pa.blocks_reused(), 0u);
  const v1::StoreStatsResponse after_a = StoreStats(c.store_address());
  EXPECT_EQ(after_a.blocks(), 5u);
  EXPECT_EQ(after_a.puts(), 5u);

  StreamResult b = RouterGenerate(c.router_address(), GreedyRequest(second, kv, 8));
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  const v1::PrefillStats& pb = b.last.prefill();
  // 170 tokens: 5 full blocks + 10; the first 4 are the first prompt's.
  EXPECT_EQ(pb.blocks_total(), 6u);
  EXPECT_EQ(pb.blocks_reused(), 4u);
  EXPECT_EQ(pb.tokens_computed(), 170u - 4 * 32);
  EXPECT_GT(pb.bytes_fetched(), 0u);
  const v1::StoreStatsResponse after_b = StoreStats(c.store_address());
  EXPECT_EQ(after_b.puts() - after_a.puts(), 2u);  // only the two new blocks
  EXPECT_EQ(after_b.duplicate_puts(), 0u);
  EXPECT_EQ(after_b.blocks(), 7u);
  // The bytes pushed are the two new blocks' (a quantized full block and
  // an fp16 partial block), far less than the whole prompt's.
  EXPECT_LT(pb.bytes_pushed(), pa.bytes_pushed());

  auto queries = ScrapeMetric(c.prefill(0), "kvq_prefix_cache_queries_total");
  auto hits = ScrapeMetric(c.prefill(0), "kvq_prefix_cache_hits_total");
  ASSERT_TRUE(queries.ok()) << queries.status();
  ASSERT_TRUE(hits.ok()) << hits.status();
  EXPECT_EQ(*queries, 5 + 6);
  EXPECT_EQ(*hits, 4);

  // The decode worker got every block of the second prompt.
  EXPECT_EQ(b.last.decode_bytes_fetched(), pb.bytes_fetched() + pb.bytes_pushed());
}

}  // namespace
}  // namespace kvq::testing

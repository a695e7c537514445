// `kvq bench serve`'s workloads at a tiny scale (a small synthetic model, a
// few requests): the rows' fields are filled and consistent with each other.
// The figures themselves are not checked (tests are not benchmarks).
#include "services/bench/serve_bench.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/model_loader.h"
#include "services/bench/netns_link.h"
#include "services/bench/overlap_bench.h"

namespace kvq::bench {
namespace {

constexpr char kTinyModel[] =
    "synthetic:dim=64,hidden=128,layers=3,heads=4,kv_heads=2,head_dim=16,vocab=512,"
    "seq_len=512";

BenchModel TinyModel() {
  BenchModel m;
  m.model = kTinyModel;
  const char* tmp = std::getenv("TEST_TMPDIR");
  EXPECT_TRUE(WriteBenchTokenizer(tmp ? tmp : "/tmp", &m).ok());
  EXPECT_FALSE(m.tokenizer.empty());
  return m;
}

TEST(ServeBenchTest, WritesATokenizerOfTheSyntheticModelsVocabulary) {
  BenchModel m;
  m.model =
      "synthetic:dim=64,hidden=128,layers=1,heads=4,kv_heads=2,head_dim=16,vocab=1000";
  const char* tmp = std::getenv("TEST_TMPDIR");
  ASSERT_TRUE(WriteBenchTokenizer(tmp ? tmp : "/tmp", &m).ok());
  absl::StatusOr<model::LoadedModel> loaded = model::LoadModel(m.model, m.tokenizer);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_NE(loaded->tokenizer, nullptr);
  EXPECT_EQ(loaded->tokenizer->vocab_size(), 1000);
  // A checkpoint (not a synthetic spec) keeps its own tokenizer search.
  BenchModel checkpoint;
  checkpoint.model = "/nonexistent/model.bin";
  ASSERT_TRUE(WriteBenchTokenizer(tmp ? tmp : "/tmp", &checkpoint).ok());
  EXPECT_TRUE(checkpoint.tokenizer.empty());
}

TEST(ServeBenchTest, PercentilesAreNearestRank) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);
  EXPECT_EQ(Percentile(v, 50), 50);
  EXPECT_EQ(Percentile(v, 99), 99);
  EXPECT_EQ(Percentile(v, 100), 100);
  EXPECT_EQ(Percentile({7}, 99), 7);
  EXPECT_EQ(Percentile({}, 50), 0);
  EXPECT_EQ(Median({3, 1, 2}), 2);
  EXPECT_EQ(Median({4, 1, 2, 3}), 2.5);
}

TEST(ServeBenchTest, BenchTokensAreValidAndDistinctPerStream) {
  const std::vector<int> a = BenchTokens(200, 1, 32000, true);
  const std::vector<int> b = BenchTokens(200, 2, 32000, true);
  ASSERT_EQ(a.size(), 200u);
  EXPECT_EQ(a[0], 1);
  for (size_t i = 1; i < a.size(); ++i) {
    EXPECT_GE(a[i], 3);
    EXPECT_LT(a[i], 512);
  }
  EXPECT_NE(a, b);
  EXPECT_EQ(a, BenchTokens(200, 1, 32000, true));
  EXPECT_NE(BenchTokens(5, 1, 32000, false)[0], 1);
}

TEST(ServeBenchTest, DecodeThroughputRowsAreConsistent) {
  ThroughputOptions o;
  o.model = TinyModel();
  o.prompts = 2;
  o.prompt_tokens = 320;  // + 32 + 8: 12 blocks, kivi2 at R=128 quantizes 7
  o.suffix_tokens = 32;
  o.requests = 6;
  o.gen_tokens = 8;
  o.budget_sequences = 3;
  std::vector<ThroughputRow> rows;
  for (const std::string kv : {"fp16", "kivi2"}) {
    absl::StatusOr<ThroughputRow> row = DecodeThroughput(o, kv);
    ASSERT_TRUE(row.ok()) << kv << ": " << row.status();
    const ThroughputRow& r = *row;
    SCOPED_TRACE(kv);
    EXPECT_EQ(r.kv, kv);
    EXPECT_EQ(r.requests, 6);
    EXPECT_EQ(r.tokens, 6u * 8u);
    EXPECT_GT(r.seconds, 0);
    EXPECT_NEAR(r.tokens_per_s, r.tokens / r.seconds, 1e-6 * r.tokens_per_s);
    EXPECT_GT(r.ttft_p50_ms, 0);
    EXPECT_LE(r.ttft_p50_ms, r.ttft_p99_ms);
    EXPECT_LE(r.ttft_p99_ms, r.seconds * 1e3);
    EXPECT_GE(r.itl_p50_ms, 0);
    EXPECT_LE(r.itl_p50_ms, r.itl_p99_ms);
    // Prefix reuse: the warmed prompt's blocks are fetched, only the
    // request's own suffix is computed.
    EXPECT_EQ(r.mean_tokens_computed, 32);
    EXPECT_EQ(r.sequences_fit, static_cast<int>(r.kv_budget_bytes / r.sequence_bytes));
    EXPECT_LE(r.requests_waited, 6u);
    // At most every request per step, at least one.
    EXPECT_GE(r.mean_batch, 1);
    EXPECT_LE(r.mean_batch, std::min(6, r.sequences_fit));
    EXPECT_GT(r.mean_step_ms, 0);
    rows.push_back(r);
  }
  // Equal memory: the same budget, fp16's fitting exactly budget_sequences.
  EXPECT_EQ(rows[0].kv_budget_bytes, rows[1].kv_budget_bytes);
  EXPECT_EQ(rows[0].kv_budget_bytes, 3 * rows[0].sequence_bytes);
  EXPECT_EQ(rows[0].sequences_fit, 3);
  EXPECT_LT(rows[1].sequence_bytes, rows[0].sequence_bytes);
  EXPECT_GT(rows[1].sequences_fit, rows[0].sequences_fit);
}

TEST(ServeBenchTest, DecodeThroughputRejectsAnOverlongWorkload) {
  ThroughputOptions o;
  o.model.model = kTinyModel;
  o.prompt_tokens = 500;  // + 32 + 128 > seq_len 512
  absl::StatusOr<ThroughputRow> row = DecodeThroughput(o, "fp16");
  EXPECT_EQ(row.status().code(), absl::StatusCode::kInvalidArgument) << row.status();
}

TEST(ServeBenchTest, TransferOverlapRowIsConsistent) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "the transfer-overlap run needs root (network namespace, veth, tc)";
  }
  // Root in a container may still lack CAP_NET_ADMIN: probe once.
  const std::string probe = absl::StrCat("kvqprobe-", getpid());
  if (!RunCommand({"ip", "netns", "add", probe}).ok()) {
    GTEST_SKIP() << "this machine cannot create network namespaces (`ip netns add` "
                    "failed: no CAP_NET_ADMIN?); the transfer-overlap run needs them";
  }
  ASSERT_TRUE(RunCommand({"ip", "netns", "del", probe}).ok());
  OverlapOptions o;
  o.model = TinyModel();
  o.prompt_tokens = 256;
  o.runs = 2;
  // fp16 and a slow link: the push (~100 KB) is several times the token
  // bucket's 16 KiB burst and takes ~10x the tiny model's compute.
  o.kv = "fp16";
  o.transfer_ratio = 10;
  absl::StatusOr<OverlapRow> row = TransferOverlap(o);
  ASSERT_TRUE(row.ok()) << row.status();
  const OverlapRow& r = *row;
  EXPECT_EQ(r.kv, "fp16");
  EXPECT_EQ(r.layers, 3);
  EXPECT_GT(r.bytes_pushed, 0u);
  EXPECT_GT(r.calibration_compute_s, 0);
  EXPECT_GT(r.cap_bits_per_s, 0u);
  EXPECT_NEAR(r.whole_transfer_s, r.bytes_pushed * 8.0 / r.cap_bits_per_s, 1e-9);
  EXPECT_NEAR(r.layer_share_s, r.whole_transfer_s / 3, 1e-9);
  EXPECT_NEAR(r.streaming_exposed_layer_shares, r.streaming_exposed_s / r.layer_share_s,
              1e-9);
  ASSERT_EQ(r.streaming_exposed_runs.size(), 2u);
  ASSERT_EQ(r.after_exposed_runs.size(), 2u);
  ASSERT_EQ(r.streaming_compute_runs.size(), 2u);
  ASSERT_EQ(r.after_compute_runs.size(), 2u);
  for (double s : r.streaming_compute_runs) EXPECT_GT(s, 0);
  for (double s : r.after_compute_runs) EXPECT_GT(s, 0);
  for (double s : r.streaming_exposed_runs) EXPECT_GE(s, 0);
  // Pushing after the prefill exposes the whole capped transfer (less the
  // token bucket's burst): the cap is in force.
  for (double s : r.after_exposed_runs) EXPECT_GT(s, 0.5 * r.whole_transfer_s);
  // The namespace is gone.
  absl::StatusOr<std::string> list = RunCommand({"ip", "netns", "list"});
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(list->find(absl::StrCat("kvqbench-", getpid())), std::string::npos) << *list;
}

}  // namespace
}  // namespace kvq::bench

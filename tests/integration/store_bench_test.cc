// `kvq bench store` and `kvq serve grpc-floor` end to end: the benchmark's
// JSON rows, its options, and a run against a store it did not start.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/child_process.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/launcher/launcher.h"
#include "tests/common/run_command.h"
#include "tests/integration/store_process.h"
#include "tests/kvstore/test_blocks.h"

namespace kvq::store {
namespace {

using integration::Connect;
using integration::StartStore;
using integration::ToBlock;
using kvstore::testing::MakeTestBlock;
using kvstore::testing::TestBlock;

// Runs `kvq bench store` with `args`; returns its exit status and output.
std::pair<int, std::string> RunBench(const std::string& args) {
  const testing::CommandResult r = testing::RunCommand(
      absl::StrCat(launcher::FindKvqBinary(), " bench store ", args, " 2>&1"));
  return {r.exit_code, r.out};
}

// The JSON rows of a `kvq bench store --json` output (other lines skipped).
std::vector<nlohmann::json> JsonRows(const std::string& out) {
  std::vector<nlohmann::json> rows;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.is_object()) rows.push_back(std::move(j));
  }
  return rows;
}

// Runs `kvq bench store --json` with `args`; its rows (none if it failed).
std::vector<nlohmann::json> BenchRows(const std::string& args) {
  const auto [status, out] = RunBench(absl::StrCat("--json ", args));
  EXPECT_EQ(status, 0) << out;
  return status == 0 ? JsonRows(out) : std::vector<nlohmann::json>();
}

TEST(StoreBenchTest, BenchStoreJsonRows) {
  // A tiny `kvq bench store` run: the real put/get path, the gRPC floor's
  // puts, CPU per call, and the JSON rows' fields (iperf3 / Redis baselines
  // off: they need the tools installed).
  const std::vector<nlohmann::json> rows = BenchRows(
      "--store_bench_streams=1,2 --store_bench_runs=1 --store_bench_blocks=2"
      " --nostore_bench_baselines");
  ASSERT_EQ(rows.size(), 4u);
  for (const nlohmann::json& r : rows) {
    const bool put = r.at("op") == "put";
    EXPECT_TRUE(put || r.at("op") == "get") << r;
    EXPECT_EQ(r.at("block_bytes"), 786432) << r;
    EXPECT_GT(r.at("gbps").get<double>(), 0) << r;
    EXPECT_GT(r.at("p99_ms").get<double>(), 0) << r;
    EXPECT_GE(r.at("p99_ms").get<double>(), r.at("p50_ms").get<double>()) << r;
    EXPECT_TRUE(r.at("fraction_of_tcp").is_null()) << r;
    EXPECT_TRUE(r.at("fraction_of_redis").is_null()) << r;
    // Both processes used CPU for every call (the store is a child: its pid
    // is known).
    EXPECT_GT(r.at("client_cpu_ms").get<double>(), 0) << r;
    EXPECT_GT(r.at("server_cpu_ms").get<double>(), 0) << r;
    // Puts also ran against `kvq serve grpc-floor`; gets have no floor.
    if (put) {
      EXPECT_GT(r.at("grpc_floor_gbps").get<double>(), 0) << r;
      EXPECT_NEAR(r.at("fraction_of_floor").get<double>(),
                  r.at("gbps").get<double>() / r.at("grpc_floor_gbps").get<double>(),
                  1e-9)
          << r;
    } else {
      EXPECT_TRUE(r.at("grpc_floor_gbps").is_null()) << r;
    }
  }
  EXPECT_EQ(rows[2].at("streams"), 2) << rows[2];
}

TEST(StoreBenchTest, BenchStoreOpsAndBlocksPerCall) {
  // --store_bench_ops=put reports puts only; --store_bench_blocks_per_call
  // batches blocks into calls; an unknown op is refused.
  const std::vector<nlohmann::json> rows = BenchRows(
      "--store_bench_streams=1 --store_bench_runs=1 --store_bench_blocks=2"
      " --nostore_bench_baselines --nostore_bench_grpc_floor --store_bench_ops=put");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("op"), "put");
  EXPECT_TRUE(rows[0].at("grpc_floor_gbps").is_null()) << rows[0];

  // Several blocks per call: the same bytes in fewer calls, no floor.
  const std::vector<nlohmann::json> batched = BenchRows(
      "--store_bench_streams=2 --store_bench_runs=1 --store_bench_blocks=5"
      " --nostore_bench_baselines --store_bench_blocks_per_call=2");
  ASSERT_EQ(batched.size(), 2u);
  for (const nlohmann::json& r : batched) {
    EXPECT_EQ(r.at("blocks_per_call"), 2) << r;
    EXPECT_GT(r.at("gbps").get<double>(), 0) << r;
    EXPECT_TRUE(r.at("grpc_floor_gbps").is_null()) << r;
  }

  const auto [bad_status, bad_out] = RunBench(
      "--store_bench_streams=1 --nostore_bench_baselines --store_bench_ops=put,scan");
  EXPECT_NE(bad_status, 0);
  EXPECT_TRUE(absl::StrContains(bad_out, "unknown op 'scan'")) << bad_out;
}

TEST(StoreBenchTest, GrpcFloorDropsPutsAndServesNothingElse) {
  // `kvq serve grpc-floor` answers a real client's PutBlocks with STORED and
  // keeps nothing: a get finds nothing (UNIMPLEMENTED), nor does a lookup.
  auto floor =
      ChildProcess::Start("grpc-floor",
                          {launcher::FindKvqBinary(), "serve", "grpc-floor",
                           "--address=127.0.0.1:0", "--max_message_bytes=8388608"},
                          {});
  ASSERT_TRUE(floor.ok()) << floor.status();
  auto client = Connect((*floor)->address());
  const TestBlock t = MakeTestBlock(3);
  auto put = client->PutBlocks({ToBlock(t)});
  ASSERT_TRUE(put.ok()) << put.status();
  ASSERT_EQ(put->size(), 1u);
  EXPECT_EQ((*put)[0], kvstore::PutOutcome::kStored);
  EXPECT_TRUE(client->Stats(0).ok());
  auto got = client->GetBlocks({t.key});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->blocks[0].status().code(), absl::StatusCode::kUnimplemented)
      << got->blocks[0].status();
  EXPECT_EQ(client->Lookup({t.key}).status().code(), absl::StatusCode::kUnimplemented);
}

TEST(StoreBenchTest, BenchStoreAgainstARunningStore) {
  // --store_bench_address measures a store it did not start: the blocks land
  // there (a 1-stream run: 1 fill run, puts of 1 measured run); a store too
  // small for two runs' blocks is refused.
  auto store = StartStore({"--capacity_bytes=20000000", "--max_message_bytes=8388608"});
  ASSERT_NE(store, nullptr);
  const auto [status, out] =
      RunBench(absl::StrCat("--json --store_bench_streams=1 --store_bench_runs=1",
                            " --store_bench_blocks=2 --nostore_bench_baselines",
                            " --store_bench_address=", store->address()));
  ASSERT_EQ(status, 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "\"op\":\"get\"")) << out;
  auto stats = Connect(store->address())->Stats(0);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GE(stats->puts, 2u);
  EXPECT_GE(stats->hits, 2u);

  const auto [small_status, small_out] = RunBench(absl::StrCat(
      "--store_bench_streams=16 --store_bench_blocks=8",
      " --nostore_bench_baselines --store_bench_address=", store->address()));
  EXPECT_NE(small_status, 0);
  EXPECT_TRUE(absl::StrContains(small_out, "FAILED_PRECONDITION")) << small_out;
}

}  // namespace
}  // namespace kvq::store

// `kvq bench store [--json]`: the KV store's put/get throughput and latency
// against raw TCP and Redis (services/store/store_bench.h).
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "nlohmann/json.hpp"
#include "services/common/build_info.h"
#include "services/store/store_bench.h"

ABSL_FLAG(std::string, store_bench_streams, "1,4,16",
          "Comma-separated numbers of concurrent streams to measure.");
ABSL_FLAG(int, store_bench_blocks, 0,
          "Blocks each stream puts and gets per run (redis-benchmark gets as many "
          "requests); 0 = max(32, 256 / streams).");
ABSL_FLAG(int, store_bench_runs, 3, "Runs per configuration (throughput is the median).");
ABSL_FLAG(bool, store_bench_fill, true,
          "Fill the store to capacity (untimed) before measuring, so puts run in "
          "the steady state of a full store (evicting LRU blocks).");
ABSL_FLAG(std::string, store_bench_address, "",
          "HOST:PORT of a running `kvq serve store` to measure instead of starting one "
          "(e.g. to profile the server on its own); its capacity must hold two runs' "
          "blocks, and the bench's fill evicts what it holds. Empty: start a store.");
ABSL_FLAG(std::string, store_bench_ops, "put,get",
          "Comma-separated operations to report (put, get); 'put' alone skips the gets "
          "(e.g. to profile puts).");
ABSL_FLAG(bool, store_bench_grpc_floor, true,
          "Also measure puts against `kvq serve grpc-floor`, a server with the store's "
          "gRPC settings that drops what it receives: the most gRPC allows here.");
ABSL_FLAG(int, store_bench_blocks_per_call, 1,
          "Blocks per PutBlocks / GetBlocks call (as a prefill worker sends a prompt's "
          "blocks in one call); redis-benchmark pipelines as many (-P). The gRPC floor "
          "is measured at 1 only.");
ABSL_FLAG(bool, store_bench_baselines, true,
          "Also measure iperf3 (raw TCP) and redis-benchmark in the same run.");

namespace kvq::store {
namespace {

// JSON numbers, with null for unavailable baselines.
nlohmann::json OrNull(double v) { return v < 0 ? nlohmann::json() : nlohmann::json(v); }

int BenchStore() {
  StoreBenchOptions options;
  options.streams.clear();
  for (absl::string_view s :
       absl::StrSplit(absl::GetFlag(FLAGS_store_bench_streams), ',', absl::SkipEmpty())) {
    int n = 0;
    if (!absl::SimpleAtoi(s, &n)) {
      std::fprintf(stderr, "kvq bench store: bad --store_bench_streams entry '%s'\n",
                   std::string(s).c_str());
      return 2;
    }
    options.streams.push_back(n);
  }
  options.ops =
      absl::StrSplit(absl::GetFlag(FLAGS_store_bench_ops), ',', absl::SkipEmpty());
  options.blocks_per_stream = absl::GetFlag(FLAGS_store_bench_blocks);
  options.runs = absl::GetFlag(FLAGS_store_bench_runs);
  options.baselines = absl::GetFlag(FLAGS_store_bench_baselines);
  options.grpc_floor = absl::GetFlag(FLAGS_store_bench_grpc_floor);
  options.blocks_per_call = absl::GetFlag(FLAGS_store_bench_blocks_per_call);
  options.fill_first = absl::GetFlag(FLAGS_store_bench_fill);
  options.address = absl::GetFlag(FLAGS_store_bench_address);
  absl::StatusOr<std::vector<StoreBenchRow>> rows = RunStoreBench(options);
  if (!rows.ok()) {
    std::fprintf(stderr, "kvq bench store: %s\n", rows.status().ToString().c_str());
    return 1;
  }
  if (absl::GetFlag(FLAGS_json)) {
    for (const StoreBenchRow& r : *rows) {
      nlohmann::json j = {{"op", r.op},
                          {"streams", r.streams},
                          {"block_bytes", r.block_bytes},
                          {"gbps", r.gbps},
                          {"p50_ms", r.p50_ms},
                          {"p99_ms", r.p99_ms},
                          {"tcp_gbps", OrNull(r.tcp_gbps)},
                          {"redis_gbps", OrNull(r.redis_gbps)},
                          {"redis_p50_ms", OrNull(r.redis_p50_ms)},
                          {"redis_p99_ms", OrNull(r.redis_p99_ms)},
                          {"fraction_of_tcp", OrNull(r.fraction_of_tcp)},
                          {"fraction_of_redis", OrNull(r.fraction_of_redis)},
                          {"grpc_floor_gbps", OrNull(r.grpc_floor_gbps)},
                          {"fraction_of_floor", OrNull(r.fraction_of_floor)},
                          {"client_cpu_ms", OrNull(r.client_cpu_ms)},
                          {"server_cpu_ms", OrNull(r.server_cpu_ms)},
                          {"floor_server_cpu_ms", OrNull(r.floor_server_cpu_ms)},
                          {"blocks_per_call", r.blocks_per_call},
                          {"runs", options.runs}};
      for (const auto& [key, value] : services::BuildInfoLabels()) j[key] = value;
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  }
  std::printf(
      "KV store, %llu-byte blocks over loopback, %d per call, median of %d runs\n",
      static_cast<unsigned long long>(rows->front().block_bytes), options.blocks_per_call,
      options.runs);
  std::printf("%-4s %7s %8s %8s %8s %8s %10s %10s %8s %9s %9s %9s %9s %9s\n", "op",
              "streams", "GB/s", "p50 ms", "p99 ms", "TCP GB/s", "Redis GB/s",
              "floor GB/s", "of TCP", "of Redis", "of floor", "cli CPUms", "srv CPUms",
              "flr CPUms");
  for (const StoreBenchRow& r : *rows) {
    std::printf(
        "%-4s %7d %8.3f %8.2f %8.2f %8.3f %10.3f %10.3f %8.2f %9.2f %9.2f %9.3f %9.3f "
        "%9.3f\n",
        r.op.c_str(), r.streams, r.gbps, r.p50_ms, r.p99_ms, r.tcp_gbps, r.redis_gbps,
        r.grpc_floor_gbps, r.fraction_of_tcp, r.fraction_of_redis, r.fraction_of_floor,
        r.client_cpu_ms, r.server_cpu_ms, r.floor_server_cpu_ms);
  }
  return 0;
}

const cli::CommandRegistrar kBenchStore({
    .path = "bench store",
    .summary = "KV store put/get throughput and latency vs raw TCP (iperf3) and Redis.",
    .description =
        "Starts `kvq serve store` on loopback and measures 768 KiB blocks with 1, 4 and\n"
        "16 concurrent streams (one block per RPC), then iperf3 -P N and\n"
        "redis-benchmark with the same value size and concurrency. Baselines print -1\n"
        "(null in --json) when the tools are missing (apt-get install iperf3\n"
        "redis-server redis-tools).",
    .flags = {"json", "store_bench_streams", "store_bench_ops", "store_bench_grpc_floor",
              "store_bench_blocks_per_call", "store_bench_blocks", "store_bench_runs",
              "store_bench_baselines", "store_bench_fill", "store_bench_address"},
    .run = [](const std::vector<std::string>&) { return BenchStore(); },
});

}  // namespace
}  // namespace kvq::store

// The `kvq bench store` workloads (issue 5): put and get throughput and
// latency of 768 KiB blocks (2-bit, B = 32, G = 32, 32 layers, 8 KV heads,
// head_dim 128) against a real `kvq serve store` process over loopback, with
// 1, 4 and 16 concurrent streams (one client and one TCP connection each,
// one block per RPC), next to raw TCP (iperf3 -P N) and Redis
// (redis-benchmark, same value size and concurrency) measured in the same run.
// The store is first filled to capacity (untimed), so puts are measured in
// the steady state of a full store.
//
//   StoreBenchOptions opts;  // defaults: streams {1, 4, 16}, 3 runs
//   KVQ_ASSIGN_OR_RETURN(std::vector<StoreBenchRow> rows, RunStoreBench(opts));
#ifndef KVQ_SERVICES_STORE_STORE_BENCH_H_
#define KVQ_SERVICES_STORE_STORE_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvq::store {

struct StoreBenchOptions {
  std::string kvq_binary;  // "" = this process's executable
  // HOST:PORT of a running store to measure instead of starting one (to
  // profile the server and the client as separate processes). Its blocks are
  // evicted by the fill; "" = start `kvq serve store` as a child.
  std::string address;
  std::vector<int> streams = {1, 4, 16};
  // Blocks each stream puts and gets per run; 0 = max(32, 256 / streams),
  // so that a run of few streams is long enough to time (hundreds of ms).
  int blocks_per_stream = 0;
  int runs = 3;            // throughput: median over runs
  bool baselines = true;   // iperf3 and redis-benchmark
  bool grpc_floor = true;  // puts against `kvq serve grpc-floor` (1 block per call)
  // Blocks per PutBlocks / GetBlocks call (a prefill worker sends a prompt's
  // blocks in one); redis-benchmark then pipelines as many (-P).
  int blocks_per_call = 1;
  // Fill the store to capacity (untimed) first, so that measured puts run in
  // the steady state of a full store: evicting and reusing memory.
  bool fill_first = true;
  // Which operations to report ("put", "get"). Gets read the blocks the
  // run's puts stored, so puts always run; "put" alone skips the gets.
  std::vector<std::string> ops = {"put", "get"};
  absl::Duration iperf_duration = absl::Seconds(2);
};

struct StoreBenchRow {
  std::string op;  // "put" or "get"
  int streams = 0;
  uint64_t block_bytes = 0;
  double gbps = 0;                // 1e9 bytes/s, median over runs
  double p50_ms = 0, p99_ms = 0;  // per-block RPC latency, all runs pooled
  // Baselines (< 0 when unavailable) and ratios against them (< 0 likewise).
  // Each run measures the store, then iperf3 and redis-benchmark (the same
  // number of requests); the baselines are medians over runs and the
  // fractions medians of the per-run ratios.
  double tcp_gbps = -1, redis_gbps = -1, redis_p50_ms = -1, redis_p99_ms = -1;
  double fraction_of_tcp = -1, fraction_of_redis = -1;
  // Puts against `kvq serve grpc-floor` (the same client and gRPC server
  // settings; the server drops the messages): what gRPC alone allows here.
  double grpc_floor_gbps = -1, fraction_of_floor = -1;
  // CPU milliseconds per RPC (median over runs) of the bench's client and of
  // the store process (-1 for a store at --store_bench_address). On a machine
  // with few cores the sum bounds the throughput of many streams.
  double client_cpu_ms = -1, server_cpu_ms = -1;
  double floor_server_cpu_ms = -1;  // the floor server's, per put
  int blocks_per_call = 1;          // latency and CPU are per call
};

// The blocks per stream and run that `options` gives for `streams` streams.
int BlocksPerStream(const StoreBenchOptions& options, int streams);

// Starts the store, runs every workload, stops it. Baseline failures do not
// fail the run (their fields stay -1 and a note goes to stderr).
absl::StatusOr<std::vector<StoreBenchRow>> RunStoreBench(
    const StoreBenchOptions& options);

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_STORE_BENCH_H_

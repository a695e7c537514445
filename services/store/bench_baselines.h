// Baselines for `kvq bench store`, measured in the same run: raw TCP loopback
// throughput with N parallel streams (iperf3 -P N) and Redis with the same
// value size and concurrency (redis-server + redis-benchmark), the store a
// user would otherwise pick. Both are Debian packages (iperf3, redis-server,
// redis-tools); when a tool is missing the call returns NOT_FOUND.
//
//   absl::StatusOr<double> tcp = IperfGbps(4, absl::Seconds(2));
//   absl::StatusOr<RedisResult> r = RunRedisBenchmark(4, 768 << 10, 128);
#ifndef KVQ_SERVICES_STORE_BENCH_BASELINES_H_
#define KVQ_SERVICES_STORE_BENCH_BASELINES_H_

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kvq::store {

// Loopback TCP throughput in GB/s (1e9 bytes/s) of `streams` parallel
// streams for `duration`, as iperf3 reports it received.
absl::StatusOr<double> IperfGbps(int streams, absl::Duration duration);

struct RedisOpResult {
  double gbps = 0;  // requests/s x value bytes / 1e9
  double p50_ms = 0;
  double p99_ms = 0;
};
struct RedisResult {
  RedisOpResult set, get;
};

// Starts a private redis-server on a free loopback port (no persistence),
// runs redis-benchmark SET and GET with `clients` connections, `requests`
// requests of `value_bytes`, `pipeline` requests in flight per connection
// (-P), and stops the server.
absl::StatusOr<RedisResult> RunRedisBenchmark(int clients, size_t value_bytes,
                                              int requests, int pipeline = 1);

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_BENCH_BASELINES_H_

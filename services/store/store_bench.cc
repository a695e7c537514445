#include "services/store/store_bench.h"

#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/child_process.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kvstore/block.h"
#include "services/store/bench_baselines.h"
#include "services/store/client.h"

namespace kvq::store {
namespace {

using kvstore::Block;
using kvstore::BlockKey;

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

kvstore::BlockMeta BenchMeta() {
  kvstore::BlockMeta meta;
  meta.encoding = kernels::BlockEncoding::Quantized(2, 32, 32);
  meta.model_id = 0xbe7c4;
  meta.n_layers = 32;
  meta.n_kv_heads = 8;
  meta.head_dim = 128;
  meta.token_count = 32;
  return meta;
}

// Pseudo-random block contents, every block's different; generated once per
// bench, before anything is timed (runs reuse them under new keys).
std::vector<Block> MakeContents(uint64_t block_bytes, int n) {
  std::string base(block_bytes, '\0');
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= base.size(); i += 8) {
    const uint64_t r = rng();
    std::memcpy(base.data() + i, &r, 8);
  }
  std::vector<Block> contents;
  for (int i = 0; i < n; ++i) {
    auto bytes = std::make_shared<std::string>(base);
    const uint64_t tag = static_cast<uint64_t>(i);
    std::memcpy(bytes->data(), &tag, sizeof(tag));
    Block b;
    b.meta = BenchMeta();
    b.meta.checksum = kvstore::BlockChecksum(*bytes);
    b.bytes = std::move(bytes);
    contents.push_back(std::move(b));
  }
  return contents;
}

// The blocks each of `streams` streams puts in one run: `contents` under keys
// unique to (run, stream, index).
std::vector<std::vector<Block>> RunBlocks(const std::vector<Block>& contents, int run,
                                          int streams, int n) {
  std::vector<std::vector<Block>> per_stream(streams);
  for (int s = 0; s < streams; ++s) {
    for (int i = 0; i < n; ++i) {
      Block b = contents[(s * n + i) % contents.size()];
      b.key =
          BlockKey{0xbe7c400000000000ULL | static_cast<uint32_t>(run),
                   (uint64_t{static_cast<uint32_t>(s)} << 32) | static_cast<uint32_t>(i)};
      per_stream[s].push_back(std::move(b));
    }
  }
  return per_stream;
}

// CPU seconds used so far by all threads of process `pid` (0 = this one), or
// -1 if unknown: the sum of the live threads' on-CPU time, in nanoseconds,
// from /proc/PID/task/*/schedstat (clock ticks would be too coarse for a run).
double ProcessCpuSeconds(pid_t pid) {
  if (pid == 0) {
    timespec ts;
    if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0) return -1;
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  std::error_code ec;
  double seconds = 0;
  for (const auto& task :
       std::filesystem::directory_iterator(absl::StrCat("/proc/", pid, "/task"), ec)) {
    std::ifstream in(task.path() / "schedstat");
    uint64_t ns = 0;
    if (in >> ns) seconds += 1e-9 * static_cast<double>(ns);
  }
  return ec ? -1 : seconds;
}

struct PhaseResult {
  double gbps = 0;
  std::vector<double> latencies_ms;
  // CPU milliseconds per RPC of the bench client (this process) and of the
  // server (when its pid is known), over the timed region; -1 = unknown.
  double client_cpu_ms = -1, server_cpu_ms = -1;
};

// Runs `op` on `streams` threads at once, each over its own client,
// `blocks_per_call` blocks per RPC; throughput = all bytes / wall time of the
// slowest stream.
absl::StatusOr<PhaseResult> RunPhase(const std::string& op, const std::string& address,
                                     pid_t server_pid,
                                     const std::vector<std::vector<Block>>& per_stream,
                                     int blocks_per_call) {
  const int streams = static_cast<int>(per_stream.size());
  std::vector<std::unique_ptr<StoreClient>> clients;
  for (int s = 0; s < streams; ++s) {
    KVQ_ASSIGN_OR_RETURN(std::unique_ptr<StoreClient> c,
                         StoreClient::Create({.addresses = {address},
                                              .deadline = absl::Seconds(60),
                                              .max_message_bytes = 8 << 20,
                                              .own_connections = true}));
    KVQ_RETURN_IF_ERROR(c->Stats(0).status());  // connect before timing
    clients.push_back(std::move(c));
  }
  std::vector<std::vector<double>> lat(streams);
  std::vector<absl::Status> status(streams);
  std::vector<std::thread> threads;
  const double client_cpu0 = ProcessCpuSeconds(0);
  const double server_cpu0 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
  const absl::Time start = absl::Now();
  for (int s = 0; s < streams; ++s) {
    threads.emplace_back([&, s] {
      const absl::Span<const Block> mine = per_stream[s];
      for (size_t i = 0; i < mine.size(); i += blocks_per_call) {
        const absl::Span<const Block> call = mine.subspan(i, blocks_per_call);
        const absl::Time t0 = absl::Now();
        if (op == "put") {
          absl::StatusOr<std::vector<kvstore::PutOutcome>> r =
              clients[s]->PutBlocks(call);
          if (!r.ok()) status[s] = r.status();
        } else {
          std::vector<BlockKey> keys;
          for (const Block& b : call) keys.push_back(b.key);
          absl::StatusOr<GetResult> r = clients[s]->GetBlocks(keys);
          if (!r.ok()) {
            status[s] = r.status();
          } else {
            for (const absl::StatusOr<Block>& got : r->blocks) {
              if (!got.ok()) status[s] = got.status();
            }
          }
        }
        if (!status[s].ok()) return;
        lat[s].push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double client_cpu1 = ProcessCpuSeconds(0);
  const double server_cpu1 = server_pid > 0 ? ProcessCpuSeconds(server_pid) : -1;
  PhaseResult result;
  uint64_t bytes = 0;
  size_t calls = 0;
  for (int s = 0; s < streams; ++s) {
    KVQ_RETURN_IF_ERROR(status[s]);
    for (const Block& b : per_stream[s]) bytes += b.bytes->size();
    calls += lat[s].size();
    result.latencies_ms.insert(result.latencies_ms.end(), lat[s].begin(), lat[s].end());
  }
  result.gbps = static_cast<double>(bytes) / seconds / 1e9;
  if (client_cpu0 >= 0 && client_cpu1 >= 0) {
    result.client_cpu_ms = 1e3 * (client_cpu1 - client_cpu0) / static_cast<double>(calls);
  }
  if (server_cpu0 >= 0 && server_cpu1 >= 0) {
    result.server_cpu_ms = 1e3 * (server_cpu1 - server_cpu0) / static_cast<double>(calls);
  }
  return result;
}

}  // namespace

int BlocksPerStream(const StoreBenchOptions& options, int streams) {
  if (options.blocks_per_stream > 0) return options.blocks_per_stream;
  return std::max(32, 256 / std::max(streams, 1));
}

absl::StatusOr<std::vector<StoreBenchRow>> RunStoreBench(
    const StoreBenchOptions& options) {
  if (options.streams.empty() || options.blocks_per_stream < 0 || options.runs < 1 ||
      options.blocks_per_call < 1 || options.blocks_per_call > 256) {
    return absl::InvalidArgumentError(
        "bench store: need streams, blocks_per_stream >= 0, runs >= 1, "
        "blocks_per_call in [1, 256]");
  }
  for (int s : options.streams) {
    if (s < 1 || s > 256)
      return absl::InvalidArgumentError("bench store: streams in [1, 256]");
  }
  const auto timed = [&options](absl::string_view op) {
    return std::find(options.ops.begin(), options.ops.end(), op) != options.ops.end();
  };
  for (const std::string& op : options.ops) {
    if (op != "put" && op != "get") {
      return absl::InvalidArgumentError(
          absl::StrCat("bench store: unknown op '", op, "' (put, get)"));
    }
  }
  if (options.ops.empty()) return absl::InvalidArgumentError("bench store: no ops");
  // As `kvq serve store` does: no mmap/munmap cycle per block-sized buffer,
  // and no lock-order graph on every absl::Mutex operation inside gRPC.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const uint64_t block_bytes = BenchMeta().block_bytes();
  // The largest run (all streams' blocks) sizes the store and the contents.
  int max_streams = 0, max_run_blocks = 0;
  for (int s : options.streams) {
    if (s * BlocksPerStream(options, s) > max_run_blocks) {
      max_streams = s;
      max_run_blocks = s * BlocksPerStream(options, s);
    }
  }
  const uint64_t run_bytes = block_bytes * max_run_blocks;
  uint64_t capacity = 2 * run_bytes + (64 << 20);

  const std::string kvq = options.kvq_binary.empty()
                              ? std::filesystem::read_symlink("/proc/self/exe").string()
                              : options.kvq_binary;
  std::unique_ptr<ChildProcess> child;
  std::string address = options.address;
  pid_t server_pid = 0;  // known for a child store: its CPU is measured
  if (address.empty()) {
    KVQ_ASSIGN_OR_RETURN(
        child, ChildProcess::Start("store",
                                   {kvq, "serve", "store", "--address=127.0.0.1:0",
                                    absl::StrCat("--capacity_bytes=", capacity),
                                    "--max_message_bytes=8388608"},
                                   {}));
    address = child->address();
    server_pid = child->pid();
  } else {
    // A running store: fill up to its own capacity (it must hold a run's blocks).
    KVQ_ASSIGN_OR_RETURN(std::unique_ptr<StoreClient> c,
                         StoreClient::Create({.addresses = {address}}));
    KVQ_ASSIGN_OR_RETURN(kvstore::StoreStats stats, c->Stats(0));
    capacity = stats.capacity_bytes;
    if (capacity < 2 * run_bytes) {
      return absl::FailedPreconditionError(
          absl::StrCat("bench store: the store at ", address, " holds ", capacity,
                       " bytes; this bench needs at least ", 2 * run_bytes));
    }
  }

  // The gRPC floor: the same calls against a server that drops them.
  std::unique_ptr<ChildProcess> floor;
  // The floor answers one result per call: one block per call only.
  if (options.grpc_floor && options.blocks_per_call == 1) {
    KVQ_ASSIGN_OR_RETURN(
        floor, ChildProcess::Start("grpc-floor",
                                   {kvq, "serve", "grpc-floor", "--address=127.0.0.1:0",
                                    "--max_message_bytes=8388608"},
                                   {}));
  }

  const std::vector<Block> contents = MakeContents(block_bytes, max_run_blocks);

  // Steady state: a running store is full, its puts evict LRU blocks and reuse
  // their memory (as Redis's SET of one key reuses its value's). So the store
  // is filled to capacity first, untimed; measured puts then evict.
  int run_id = 0;
  if (options.fill_first) {
    const int fill_runs = static_cast<int>((capacity + run_bytes - 1) / run_bytes);
    for (int f = 0; f < fill_runs; ++f, ++run_id) {
      KVQ_RETURN_IF_ERROR(RunPhase("put", address, server_pid,
                                   RunBlocks(contents, run_id, max_streams,
                                             BlocksPerStream(options, max_streams)),
                                   options.blocks_per_call)
                              .status());
    }
  }

  std::vector<StoreBenchRow> rows;
  bool warned_tcp = false, warned_redis = false;
  for (int streams : options.streams) {
    const int blocks = BlocksPerStream(options, streams);
    // Per op, one sample per run: the store's throughput and CPU per RPC, the
    // baselines measured right after it, and the ratios within that run
    // (the host's speed drifts between runs; a ratio's two sides share it).
    struct Samples {
      std::vector<double> gbps, lat, client_cpu, server_cpu;
      std::vector<double> tcp, redis, redis_p50, redis_p99, of_tcp, of_redis;
      std::vector<double> floor, of_floor, floor_server_cpu;  // puts only
      // One run: the store's phase, the TCP baseline (<= 0: none), the same
      // op of Redis and the floor's puts (null: none).
      void Add(const PhaseResult& r, double tcp_gbps, const RedisOpResult* redis_op,
               const PhaseResult* floor_put) {
        gbps.push_back(r.gbps);
        lat.insert(lat.end(), r.latencies_ms.begin(), r.latencies_ms.end());
        client_cpu.push_back(r.client_cpu_ms);
        server_cpu.push_back(r.server_cpu_ms);
        if (tcp_gbps > 0) {
          tcp.push_back(tcp_gbps);
          of_tcp.push_back(r.gbps / tcp_gbps);
        }
        if (redis_op != nullptr && redis_op->gbps > 0) {
          redis.push_back(redis_op->gbps);
          redis_p50.push_back(redis_op->p50_ms);
          redis_p99.push_back(redis_op->p99_ms);
          of_redis.push_back(r.gbps / redis_op->gbps);
        }
        if (floor_put != nullptr && floor_put->gbps > 0) {
          floor.push_back(floor_put->gbps);
          of_floor.push_back(r.gbps / floor_put->gbps);
          floor_server_cpu.push_back(floor_put->server_cpu_ms);
        }
      }
      StoreBenchRow Row(const char* op, int streams, uint64_t block_bytes,
                        int blocks_per_call) const {
        const auto median_or_unknown = [](const std::vector<double>& v) {
          return v.empty() ? -1.0 : Median(v);
        };
        return {.op = op,
                .streams = streams,
                .block_bytes = block_bytes,
                .gbps = Median(gbps),
                .p50_ms = Percentile(lat, 0.5),
                .p99_ms = Percentile(lat, 0.99),
                .tcp_gbps = median_or_unknown(tcp),
                .redis_gbps = median_or_unknown(redis),
                .redis_p50_ms = median_or_unknown(redis_p50),
                .redis_p99_ms = median_or_unknown(redis_p99),
                .fraction_of_tcp = median_or_unknown(of_tcp),
                .fraction_of_redis = median_or_unknown(of_redis),
                .grpc_floor_gbps = median_or_unknown(floor),
                .fraction_of_floor = median_or_unknown(of_floor),
                .client_cpu_ms = Median(client_cpu),
                .server_cpu_ms = Median(server_cpu),
                .floor_server_cpu_ms = median_or_unknown(floor_server_cpu),
                .blocks_per_call = blocks_per_call};
      }
    } puts, gets;
    for (int run = 0; run < options.runs; ++run, ++run_id) {
      const std::vector<std::vector<Block>> per_stream =
          RunBlocks(contents, run_id, streams, blocks);
      // Puts always run: gets read what they stored.
      KVQ_ASSIGN_OR_RETURN(
          PhaseResult put,
          RunPhase("put", address, server_pid, per_stream, options.blocks_per_call));
      PhaseResult get;
      if (timed("get")) {
        KVQ_ASSIGN_OR_RETURN(get, RunPhase("get", address, server_pid, per_stream,
                                           options.blocks_per_call));
      }
      PhaseResult floor_put;
      if (floor != nullptr) {
        KVQ_ASSIGN_OR_RETURN(
            floor_put, RunPhase("put", floor->address(), floor->pid(), per_stream, 1));
      }
      double tcp = -1;
      absl::StatusOr<RedisResult> redis = absl::UnavailableError("baselines off");
      if (options.baselines) {
        absl::StatusOr<double> t = IperfGbps(streams, options.iperf_duration);
        if (t.ok()) {
          tcp = *t;
        } else if (!std::exchange(warned_tcp, true)) {
          std::fprintf(stderr, "kvq bench store: no TCP baseline: %s\n",
                       t.status().ToString().c_str());
        }
        // The same number of requests as the store's run, so that both pay
        // their connection warm-up over the same amount of work.
        redis = RunRedisBenchmark(streams, block_bytes, streams * blocks,
                                  options.blocks_per_call);
        if (!redis.ok() && !std::exchange(warned_redis, true)) {
          std::fprintf(stderr, "kvq bench store: no Redis baseline: %s\n",
                       redis.status().ToString().c_str());
        }
      }
      puts.Add(put, tcp, redis.ok() ? &redis->set : nullptr,
               floor != nullptr ? &floor_put : nullptr);
      if (timed("get")) gets.Add(get, tcp, redis.ok() ? &redis->get : nullptr, nullptr);
    }
    if (timed("put")) {
      rows.push_back(puts.Row("put", streams, block_bytes, options.blocks_per_call));
    }
    if (timed("get")) {
      rows.push_back(gets.Row("get", streams, block_bytes, options.blocks_per_call));
    }
  }
  if (floor != nullptr) floor->Stop();
  if (child != nullptr) child->Stop();
  return rows;
}

}  // namespace kvq::store

#include "services/store/store_bench.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/status_macros.h"
#include "kernels/block_format.h"
#include "kvstore/block.h"
#include "services/launcher/child_process.h"
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

struct PhaseResult {
  double gbps = 0;
  std::vector<double> latencies_ms;
};

// Runs `op` on `streams` threads at once, each over its own client, one
// block per RPC; throughput = all bytes / wall time of the slowest stream.
absl::StatusOr<PhaseResult> RunPhase(const std::string& op, const std::string& address,
                                     const std::vector<std::vector<Block>>& per_stream) {
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
  const absl::Time start = absl::Now();
  for (int s = 0; s < streams; ++s) {
    threads.emplace_back([&, s] {
      for (const Block& b : per_stream[s]) {
        const absl::Time t0 = absl::Now();
        if (op == "put") {
          absl::StatusOr<std::vector<kvstore::PutOutcome>> r = clients[s]->PutBlocks({b});
          if (!r.ok()) status[s] = r.status();
        } else {
          absl::StatusOr<GetResult> r = clients[s]->GetBlocks({b.key});
          if (!r.ok()) {
            status[s] = r.status();
          } else if (!r->blocks[0].ok()) {
            status[s] = r->blocks[0].status();
          }
        }
        if (!status[s].ok()) return;
        lat[s].push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  PhaseResult result;
  uint64_t bytes = 0;
  for (int s = 0; s < streams; ++s) {
    KVQ_RETURN_IF_ERROR(status[s]);
    for (const Block& b : per_stream[s]) bytes += b.bytes->size();
    result.latencies_ms.insert(result.latencies_ms.end(), lat[s].begin(), lat[s].end());
  }
  result.gbps = static_cast<double>(bytes) / seconds / 1e9;
  return result;
}

}  // namespace

absl::StatusOr<std::vector<StoreBenchRow>> RunStoreBench(
    const StoreBenchOptions& options) {
  if (options.streams.empty() || options.blocks_per_stream < 1 || options.runs < 1) {
    return absl::InvalidArgumentError(
        "bench store: need streams, blocks_per_stream >= 1, runs >= 1");
  }
  for (int s : options.streams) {
    if (s < 1 || s > 256)
      return absl::InvalidArgumentError("bench store: streams in [1, 256]");
  }
  // As `kvq serve store` does: no mmap/munmap cycle per block-sized buffer,
  // and no lock-order graph on every absl::Mutex operation inside gRPC.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  const uint64_t block_bytes = BenchMeta().block_bytes();
  const int max_streams =
      *std::max_element(options.streams.begin(), options.streams.end());
  const uint64_t run_bytes = block_bytes * max_streams * options.blocks_per_stream;
  uint64_t capacity = 2 * run_bytes + (64 << 20);

  std::unique_ptr<launcher::ChildProcess> child;
  std::string address = options.address;
  if (address.empty()) {
    std::string kvq = options.kvq_binary;
    if (kvq.empty()) kvq = std::filesystem::read_symlink("/proc/self/exe").string();
    KVQ_ASSIGN_OR_RETURN(child, launcher::ChildProcess::Start(
                                    "store",
                                    {kvq, "serve", "store", "--address=127.0.0.1:0",
                                     absl::StrCat("--capacity_bytes=", capacity),
                                     "--max_message_bytes=8388608"},
                                    {}));
    address = child->address();
  } else {
    // A running store: fill up to its own capacity (it must hold a run's blocks).
    KVQ_ASSIGN_OR_RETURN(std::unique_ptr<StoreClient> c,
                         StoreClient::Create({.addresses = {address}}));
    KVQ_ASSIGN_OR_RETURN(v1::StoreStatsResponse stats, c->Stats(0));
    capacity = stats.capacity_bytes();
    if (capacity < 2 * run_bytes) {
      return absl::FailedPreconditionError(
          absl::StrCat("bench store: the store at ", address, " holds ", capacity,
                       " bytes; this bench needs at least ", 2 * run_bytes));
    }
  }

  const std::vector<Block> contents =
      MakeContents(block_bytes, max_streams * options.blocks_per_stream);

  // Steady state: a running store is full, its puts evict LRU blocks and reuse
  // their memory (as Redis's SET of one key reuses its value's). So the store
  // is filled to capacity first, untimed; measured puts then evict.
  int run_id = 0;
  if (options.fill_first) {
    const int fill_runs = static_cast<int>((capacity + run_bytes - 1) / run_bytes);
    for (int f = 0; f < fill_runs; ++f, ++run_id) {
      KVQ_RETURN_IF_ERROR(
          RunPhase("put", address,
                   RunBlocks(contents, run_id, max_streams, options.blocks_per_stream))
              .status());
    }
  }

  std::vector<StoreBenchRow> rows;
  for (int streams : options.streams) {
    std::vector<double> put_gbps, get_gbps, put_lat, get_lat;
    for (int run = 0; run < options.runs; ++run, ++run_id) {
      const std::vector<std::vector<Block>> per_stream =
          RunBlocks(contents, run_id, streams, options.blocks_per_stream);
      KVQ_ASSIGN_OR_RETURN(PhaseResult put, RunPhase("put", address, per_stream));
      KVQ_ASSIGN_OR_RETURN(PhaseResult get, RunPhase("get", address, per_stream));
      put_gbps.push_back(put.gbps);
      get_gbps.push_back(get.gbps);
      put_lat.insert(put_lat.end(), put.latencies_ms.begin(), put.latencies_ms.end());
      get_lat.insert(get_lat.end(), get.latencies_ms.begin(), get.latencies_ms.end());
    }
    StoreBenchRow put{.op = "put",
                      .streams = streams,
                      .block_bytes = block_bytes,
                      .gbps = Median(put_gbps),
                      .p50_ms = Percentile(put_lat, 0.5),
                      .p99_ms = Percentile(put_lat, 0.99)};
    StoreBenchRow get{.op = "get",
                      .streams = streams,
                      .block_bytes = block_bytes,
                      .gbps = Median(get_gbps),
                      .p50_ms = Percentile(get_lat, 0.5),
                      .p99_ms = Percentile(get_lat, 0.99)};
    if (options.baselines) {
      std::vector<double> tcp;
      std::vector<RedisResult> redis;
      for (int run = 0; run < options.runs; ++run) {
        absl::StatusOr<double> t = IperfGbps(streams, options.iperf_duration);
        if (t.ok()) {
          tcp.push_back(*t);
        } else if (run == 0) {
          std::fprintf(stderr, "kvq bench store: no TCP baseline: %s\n",
                       t.status().ToString().c_str());
        }
        absl::StatusOr<RedisResult> r =
            RunRedisBenchmark(streams, block_bytes, streams * options.blocks_per_stream);
        if (r.ok()) {
          redis.push_back(*r);
        } else if (run == 0) {
          std::fprintf(stderr, "kvq bench store: no Redis baseline: %s\n",
                       r.status().ToString().c_str());
        }
      }
      if (!tcp.empty()) put.tcp_gbps = get.tcp_gbps = Median(tcp);
      if (!redis.empty()) {
        std::vector<double> sg, gg, sp50, sp99, gp50, gp99;
        for (const RedisResult& r : redis) {
          sg.push_back(r.set.gbps);
          gg.push_back(r.get.gbps);
          sp50.push_back(r.set.p50_ms);
          sp99.push_back(r.set.p99_ms);
          gp50.push_back(r.get.p50_ms);
          gp99.push_back(r.get.p99_ms);
        }
        put.redis_gbps = Median(sg);
        put.redis_p50_ms = Median(sp50);
        put.redis_p99_ms = Median(sp99);
        get.redis_gbps = Median(gg);
        get.redis_p50_ms = Median(gp50);
        get.redis_p99_ms = Median(gp99);
      }
    }
    for (StoreBenchRow* row : {&put, &get}) {
      if (row->tcp_gbps > 0) row->fraction_of_tcp = row->gbps / row->tcp_gbps;
      if (row->redis_gbps > 0) row->fraction_of_redis = row->gbps / row->redis_gbps;
      rows.push_back(*row);
    }
  }
  if (child != nullptr) child->Stop();
  return rows;
}

}  // namespace kvq::store

// `kvq client store-stats`: usage and counters of every KV store shard
// (KvStore.Stats through services/store/client.h), one line per shard and a
// total, or JSON Lines with --json (one object per shard).
//
//   kvq client store-stats --store
//   kvq-store-0.kvq-store:50051,kvq-store-1.kvq-store:50051
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/command.h"
#include "cli/flags.h"
#include "nlohmann/json.hpp"
#include "services/store/client.h"

namespace kvq::clients {
namespace {

int Fail(int code, const std::string& what) {
  std::fprintf(stderr, "kvq client store-stats: %s\n", what.c_str());
  return code;
}

nlohmann::json ToJson(const kvstore::StoreStats& s) {
  return {{"capacity_bytes", s.capacity_bytes},
          {"bytes", s.bytes},
          {"blocks", s.blocks},
          {"leased_blocks", s.leased_blocks},
          {"leased_bytes", s.leased_bytes},
          {"active_leases", s.active_leases},
          {"puts", s.puts},
          {"duplicate_puts", s.duplicate_puts},
          {"rejected_puts", s.rejected_puts},
          {"hits", s.hits},
          {"misses", s.misses},
          {"evictions", s.evictions},
          {"expired_leases", s.expired_leases}};
}

void PrintLine(const std::string& name, const kvstore::StoreStats& s) {
  const double used = s.capacity_bytes > 0 ? 100.0 * s.bytes / s.capacity_bytes : 0.0;
  std::printf(
      "%s: %llu / %llu bytes (%.1f%%), %llu blocks, %llu leased, puts %llu (duplicate "
      "%llu, rejected %llu), hits %llu, misses %llu, evictions %llu\n",
      name.c_str(), static_cast<unsigned long long>(s.bytes),
      static_cast<unsigned long long>(s.capacity_bytes), used,
      static_cast<unsigned long long>(s.blocks),
      static_cast<unsigned long long>(s.leased_blocks),
      static_cast<unsigned long long>(s.puts),
      static_cast<unsigned long long>(s.duplicate_puts),
      static_cast<unsigned long long>(s.rejected_puts),
      static_cast<unsigned long long>(s.hits), static_cast<unsigned long long>(s.misses),
      static_cast<unsigned long long>(s.evictions));
}

void Add(const kvstore::StoreStats& s, kvstore::StoreStats* total) {
  total->capacity_bytes += s.capacity_bytes;
  total->bytes += s.bytes;
  total->blocks += s.blocks;
  total->leased_blocks += s.leased_blocks;
  total->puts += s.puts;
  total->duplicate_puts += s.duplicate_puts;
  total->rejected_puts += s.rejected_puts;
  total->hits += s.hits;
  total->misses += s.misses;
  total->evictions += s.evictions;
}

int RunStoreStats(const std::vector<std::string>& args) {
  if (!args.empty()) return Fail(2, "unexpected argument " + args[0]);
  if (!cli::RpcTimeoutValid())
    return Fail(2, "--rpc_timeout must be positive and finite");
  const std::vector<std::string> shards =
      store::ParseAddressList(absl::GetFlag(FLAGS_store));
  if (shards.empty())
    return Fail(2, "give the store's shards with --store HOST:PORT[,...]");
  auto client = store::StoreClient::Create({.addresses = shards,
                                            .deadline = absl::GetFlag(FLAGS_rpc_timeout),
                                            .max_attempts = 2,
                                            .auth_token = "",
                                            .tls = cli::TlsOptionsFromFlags()});
  if (!client.ok()) return Fail(2, client.status().ToString());

  const bool json = absl::GetFlag(FLAGS_json);
  kvstore::StoreStats total;
  int failed = 0;
  for (size_t i = 0; i < shards.size(); ++i) {
    absl::StatusOr<kvstore::StoreStats> s = (*client)->Stats(i);
    if (!s.ok()) {
      std::fprintf(stderr, "kvq client store-stats: %s: %s\n", shards[i].c_str(),
                   s.status().ToString().c_str());
      ++failed;
      continue;
    }
    Add(*s, &total);
    if (json) {
      nlohmann::json j = ToJson(*s);
      j["address"] = shards[i];
      std::printf("%s\n", j.dump().c_str());
    } else {
      PrintLine(shards[i], *s);
    }
  }
  if (!json && shards.size() > 1 && failed == 0) PrintLine("total", total);
  return failed > 0 ? 1 : 0;
}

const cli::CommandRegistrar kStoreStats({
    .path = "client store-stats",
    .summary = "Usage and counters of each KV store shard.",
    .description =
        "Calls KvStore.Stats on every shard of --store (comma-separated, as the\n"
        "workers get it) and prints bytes held against capacity, blocks, leases, puts\n"
        "(duplicate, rejected), hits, misses and evictions; a total when there are\n"
        "several shards. --json: one JSON object per shard. Exit status 1 if a shard\n"
        "cannot be reached.\n"
        "Example: kvq client store-stats --store 127.0.0.1:7070",
    .flags = cli::WithTlsFlags({"store", "rpc_timeout", "json"}),
    .run = RunStoreStats,
});

}  // namespace
}  // namespace kvq::clients

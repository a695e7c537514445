// The serving workers' store adapter against the real store service on
// loopback, in one process: leases taken by Lookup, HeldLeases renewing and
// releasing them, GetLeadingBlocks stopping at the first missing block, and
// errors that name the store.
#include "services/serving/worker_store.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvstore/kv_store.h"
#include "tests/kvstore/test_blocks.h"
#include "tests/services/store/in_process_store.h"

namespace kvq::serving {
namespace {

using store::testing::InProcessStore;

// Whether the store holds no lease within a second (releases run in the
// background).
bool NoActiveLeases(InProcessStore& server) {
  for (int i = 0; i < 100; ++i) {
    if (server.engine().Stats().active_leases == 0) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

// Three stored blocks and a fourth key the store does not hold.
std::vector<kvstore::BlockKey> PutThree(InProcessStore& server) {
  std::vector<kvstore::BlockKey> keys;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    kvstore::testing::TestBlock b = kvstore::testing::MakeTestBlock(seed);
    if (seed <= 3) {
      EXPECT_TRUE(server.engine().Put(b.key, b.meta, b.bytes).ok());
    }
    keys.push_back(b.key);
  }
  return keys;
}

TEST(ServingStoreClientTest, LookupLeasesWhatItFinds) {
  InProcessStore server;
  const std::vector<kvstore::BlockKey> keys = PutThree(server);
  auto client = WorkerStore::Connect(server.address(), absl::Seconds(5));
  ASSERT_TRUE(client.ok()) << client.status();

  auto found = (*client)->Lookup(keys, absl::Seconds(30));
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->present_prefix, 3);
  EXPECT_EQ(found->present, (std::vector<bool>{true, true, true, false}));
  ASSERT_EQ(found->leases.size(), 1u);
  EXPECT_EQ((*client)->address(found->leases[0].shard), server.address());
  EXPECT_EQ((*client)->ShardIndex(server.address()), 0);
  EXPECT_EQ((*client)->ShardIndex("127.0.0.1:1"), -1);
  EXPECT_EQ(server.engine().Stats().leased_blocks, 3u);
  // Leased blocks cannot be deleted (nor evicted).
  EXPECT_EQ(server.engine().Delete({keys[1]})[0].code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE((*client)->ReleaseLeases(found->leases).ok());
  EXPECT_EQ(server.engine().Stats().active_leases, 0u);

  // Without a TTL, Lookup leases nothing.
  auto plain = (*client)->Lookup(keys);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->leases.empty());
  EXPECT_EQ(server.engine().Stats().active_leases, 0u);
}

TEST(ServingStoreClientTest, GetLeadingBlocksStopsAtTheFirstMissing) {
  InProcessStore server;
  const std::vector<kvstore::BlockKey> keys = PutThree(server);
  auto client = WorkerStore::Connect(server.address(), absl::Seconds(5));
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE(server.engine().Delete({keys[1]})[0].ok());

  auto leading = (*client)->GetLeadingBlocks(keys);
  ASSERT_TRUE(leading.ok()) << leading.status();
  ASSERT_EQ(leading->size(), 1u);
  EXPECT_EQ((*leading)[0].key, keys[0]);
  auto all = (*client)->GetBlocks(keys);
  EXPECT_EQ(all.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(all.status().message(), "does not hold block 1"))
      << all.status();
}

TEST(ServingStoreClientTest, HeldLeasesAreRenewedUntilReleased) {
  InProcessStore server;
  const std::vector<kvstore::BlockKey> keys = PutThree(server);
  auto client = WorkerStore::Connect(server.address(), absl::Seconds(5));
  ASSERT_TRUE(client.ok());
  const absl::Duration ttl = absl::Milliseconds(300);
  const std::vector<kvstore::BlockKey> held_keys = {keys[0]};
  const std::vector<kvstore::BlockKey> loose_keys = {keys[1]};
  auto held_lookup = (*client)->Lookup(held_keys, ttl);
  auto loose_lookup = (*client)->Lookup(loose_keys, ttl);
  ASSERT_TRUE(held_lookup.ok() && loose_lookup.ok());
  {
    HeldLeases held(client->get(), held_lookup->leases, ttl);
    absl::SleepFor(4 * ttl);
    // The held lease outlived its TTL; the other one expired.
    EXPECT_EQ(server.engine().Delete(held_keys)[0].code(),
              absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(server.engine().Delete(loose_keys)[0].ok());
    EXPECT_EQ(server.engine().Stats().active_leases, 1u);
  }
  // Released (in the background) when it went out of scope.
  EXPECT_TRUE(NoActiveLeases(server));
  EXPECT_TRUE(server.engine().Delete(held_keys)[0].ok());
}

TEST(ServingStoreClientTest, TakeHandsTheLeasesOverWithoutReleasing) {
  InProcessStore server;
  const std::vector<kvstore::BlockKey> keys = PutThree(server);
  auto client = WorkerStore::Connect(server.address(), absl::Seconds(5));
  ASSERT_TRUE(client.ok());
  auto found = (*client)->Lookup(keys, absl::Seconds(30));
  ASSERT_TRUE(found.ok());
  std::vector<store::ShardLease> taken;
  {
    HeldLeases held(client->get(), found->leases, absl::Seconds(30));
    taken = held.Take();
  }
  EXPECT_EQ(taken.size(), 1u);
  EXPECT_EQ(server.engine().Stats().active_leases, 1u);
  EXPECT_TRUE((*client)->ReleaseLeases(taken).ok());
  EXPECT_EQ(server.engine().Stats().active_leases, 0u);
}

TEST(ServingStoreClientTest, ADeadStoreIsUnavailableAndNamed) {
  std::string address;
  {
    InProcessStore gone;
    address = gone.address();
  }
  auto client = WorkerStore::Connect(address, absl::Seconds(2));
  ASSERT_TRUE(client.ok());
  const absl::Time start = absl::Now();
  auto found = (*client)->Lookup({kvstore::testing::MakeTestBlock(1).key});
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(
      found.status().message(),
      absl::StrCat("the KV store at ", address, " is unavailable (Lookup)")))
      << found.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

}  // namespace
}  // namespace kvq::serving

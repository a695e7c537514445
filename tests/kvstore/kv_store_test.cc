#include "kvstore/kv_store.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kvstore/test_blocks.h"

namespace kvq::kvstore {
namespace {

using testing::MakeTestBlock;
using testing::TestBlock;

const LeaseOwner kOwner{.principal = "w", .client = "w@host"};

// Each test block: 5 layers x 4 heads x 96 bytes (2-bit, B=32, head_dim 8).
const uint64_t kBlockBytes = MakeTestBlock(0).bytes.size();

class KvStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<KvStore> Open(uint64_t capacity_blocks) {
    auto store = KvStore::Open({.capacity_bytes = capacity_blocks * kBlockBytes,
                                .max_lease_ttl = absl::Seconds(10),
                                .clock = [this] { return now_; }});
    EXPECT_TRUE(store.ok()) << store.status();
    return std::move(*store);
  }
  static absl::StatusOr<PutOutcome> Put(KvStore& s, const TestBlock& b) {
    return s.Put(b.key, b.meta, b.bytes);
  }
  static bool Has(KvStore& s, const TestBlock& b) { return s.Contains({b.key})[0]; }

  absl::Time now_ = absl::FromUnixSeconds(1000);
};

TEST_F(KvStoreTest, OpenValidatesOptions) {
  EXPECT_FALSE(KvStore::Open({.capacity_bytes = 0}).ok());
  EXPECT_FALSE(
      KvStore::Open({.capacity_bytes = 1, .max_lease_ttl = absl::ZeroDuration()}).ok());
}

TEST_F(KvStoreTest, PutGetRoundTrip) {
  auto s = Open(4);
  const TestBlock b = MakeTestBlock(1);
  ASSERT_EQ(*Put(*s, b), PutOutcome::kStored);
  auto got = s->Get({b.key, MakeTestBlock(2).key});
  ASSERT_TRUE(got[0].ok());
  EXPECT_EQ(*got[0]->bytes, b.bytes);
  EXPECT_EQ(got[0]->meta.checksum, b.meta.checksum);
  EXPECT_EQ(got[1].status().code(), absl::StatusCode::kNotFound);
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.blocks, 1u);
  EXPECT_EQ(st.bytes, kBlockBytes);
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.puts, 1u);
}

TEST_F(KvStoreTest, RepeatedPutFirstWriterWins) {
  auto s = Open(4);
  const TestBlock first = MakeTestBlock(1);
  TestBlock second = MakeTestBlock(2);
  second.key = first.key;  // same key, different (valid) bytes
  ASSERT_EQ(*Put(*s, first), PutOutcome::kStored);
  ASSERT_EQ(*Put(*s, second), PutOutcome::kAlreadyPresent);
  EXPECT_EQ(*s->Get({first.key})[0]->bytes, first.bytes);
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.duplicate_puts, 1u);
  EXPECT_EQ(st.blocks, 1u);
  EXPECT_EQ(st.bytes, kBlockBytes);
}

TEST_F(KvStoreTest, RejectsBadChecksumSizeAndMeta) {
  auto s = Open(4);
  TestBlock b = MakeTestBlock(1);
  b.bytes[7] ^= 1;
  EXPECT_EQ(Put(*s, b).status().code(), absl::StatusCode::kDataLoss);
  b = MakeTestBlock(1);
  b.bytes.pop_back();
  EXPECT_EQ(Put(*s, b).status().code(), absl::StatusCode::kInvalidArgument);
  b = MakeTestBlock(1);
  b.meta.encoding.version = kernels::kFormatVersion + 1;
  EXPECT_EQ(Put(*s, b).status().code(), absl::StatusCode::kInvalidArgument);
  b = MakeTestBlock(1);
  b.meta.n_kv_heads = 3;  // size no longer matches
  EXPECT_EQ(Put(*s, b).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Has(*s, b));
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.rejected_puts, 4u);
  EXPECT_EQ(st.blocks, 0u);
  EXPECT_EQ(st.bytes, 0u);
}

TEST_F(KvStoreTest, PutHashedTrustsTheGivenChecksumOnly) {
  auto s = Open(4);
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  ASSERT_EQ(*s->PutHashed(a.key, a.meta, a.bytes, BlockChecksum(a.bytes)),
            PutOutcome::kStored);
  // A checksum computed over corrupted bytes does not match the metadata's.
  std::string corrupt = b.bytes;
  corrupt[3] ^= 1;
  EXPECT_EQ(s->PutHashed(b.key, b.meta, corrupt, BlockChecksum(corrupt)).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(
      s->PutHashed(b.key, b.meta, b.bytes.substr(1), b.meta.checksum).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Has(*s, b));
  EXPECT_EQ(s->Stats().rejected_puts, 2u);
}

TEST_F(KvStoreTest, EvictsLeastRecentlyUsed) {
  auto s = Open(3);
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2), c = MakeTestBlock(3),
                  d = MakeTestBlock(4), e = MakeTestBlock(5);
  ASSERT_TRUE(Put(*s, a).ok());
  ASSERT_TRUE(Put(*s, b).ok());
  ASSERT_TRUE(Put(*s, c).ok());
  ASSERT_TRUE(s->Get({a.key})[0].ok());  // a is now the most recent; b the oldest
  ASSERT_EQ(*Put(*s, d), PutOutcome::kStored);
  EXPECT_FALSE(Has(*s, b));
  EXPECT_TRUE(Has(*s, a));
  EXPECT_TRUE(Has(*s, c));
  EXPECT_TRUE(Has(*s, d));
  // Order now (most recent first): d, c, a -- Contains touched a, c, d in turn.
  ASSERT_EQ(*Put(*s, e), PutOutcome::kStored);
  EXPECT_FALSE(Has(*s, a));
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.evictions, 2u);
  EXPECT_EQ(st.blocks, 3u);
  EXPECT_EQ(st.bytes, 3 * kBlockBytes);
  EXPECT_LE(st.bytes, st.capacity_bytes);
}

// Format 2 blocks (K/V bits apart, outliers, u8 scales) are sized by
// BlockBytes like any other: the store takes them, and a byte short is refused.
TEST_F(KvStoreTest, HoldsFormat2Blocks) {
  auto s = Open(4);
  const kernels::BlockEncoding enc =
      kernels::BlockEncoding::Mixed(4, 2, 32, 8, 5, 5, kernels::ScaleFormat::kU8);
  const TestBlock b = MakeTestBlock(3, enc);
  const auto put = Put(*s, b);
  ASSERT_TRUE(put.ok()) << put.status();
  auto got = s->Get({b.key});
  ASSERT_TRUE(got[0].ok()) << got[0].status();
  EXPECT_EQ(*got[0]->bytes, b.bytes);
  EXPECT_EQ(got[0]->meta.encoding, enc);
  kernels::BlockEncoding edge = enc;
  edge.edge_layers = 1;
  edge.edge_bits = 8;
  const TestBlock e = MakeTestBlock(5, edge);
  ASSERT_TRUE(Put(*s, e).ok());
  auto got_e = s->Get({e.key});
  ASSERT_TRUE(got_e[0].ok()) << got_e[0].status();
  EXPECT_EQ(*got_e[0]->bytes, e.bytes);
  TestBlock short_block = MakeTestBlock(4, enc);
  short_block.bytes.pop_back();
  EXPECT_EQ(Put(*s, short_block).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(KvStoreTest, CapacityAccountsMixedSizes) {
  // One fp16 block is 4x a 2-bit block of this shape plus scales; check that
  // accounting uses real sizes.
  const TestBlock big = MakeTestBlock(9, kernels::BlockEncoding::Fp16(32));
  const uint64_t big_bytes = big.bytes.size();
  auto store = KvStore::Open({.capacity_bytes = big_bytes + kBlockBytes});
  ASSERT_TRUE(store.ok());
  KvStore& s = **store;
  ASSERT_TRUE(Put(s, MakeTestBlock(1)).ok());
  ASSERT_TRUE(Put(s, big).ok());
  EXPECT_EQ(s.Stats().bytes, big_bytes + kBlockBytes);
  ASSERT_TRUE(Put(s, MakeTestBlock(2)).ok());  // evicts block 1 only
  EXPECT_EQ(s.Stats().blocks, 2u);
  EXPECT_EQ(s.Stats().evictions, 1u);
  EXPECT_EQ(s.Delete({big.key})[0].code(), absl::StatusCode::kOk);
  EXPECT_EQ(s.Stats().bytes, kBlockBytes);
}

TEST_F(KvStoreTest, LeasedBlocksAreNotEvictedAndFullStoreRejects) {
  auto s = Open(2);
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2), c = MakeTestBlock(3);
  ASSERT_TRUE(Put(*s, a).ok());
  ASSERT_TRUE(Put(*s, b).ok());
  auto lease = s->AcquireLease({a.key, b.key}, absl::Seconds(5), kOwner);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(s->CheckFits(kBlockBytes).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Put(*s, c).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Has(*s, a));
  EXPECT_TRUE(Has(*s, b));
  EXPECT_EQ(s->Stats().rejected_puts, 2u);  // CheckFits and Put
  EXPECT_EQ(s->Stats().leased_blocks, 2u);
  EXPECT_EQ(s->Delete({a.key})[0].code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s->ReleaseLease(*lease, "w").ok());
  EXPECT_EQ(s->ReleaseLease(*lease, "w").code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(*Put(*s, c), PutOutcome::kStored);
  EXPECT_EQ(s->Stats().evictions, 1u);
}

TEST_F(KvStoreTest, OnlyUnleasedBlocksAreEvicted) {
  auto s = Open(2);
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2), c = MakeTestBlock(3);
  ASSERT_TRUE(Put(*s, a).ok());
  ASSERT_TRUE(Put(*s, b).ok());
  ASSERT_TRUE(
      s->AcquireLease({a.key}, absl::Seconds(5), kOwner).ok());  // a is the LRU one
  ASSERT_EQ(*Put(*s, c), PutOutcome::kStored);
  EXPECT_TRUE(Has(*s, a));
  EXPECT_FALSE(Has(*s, b));
}

TEST_F(KvStoreTest, LeasesExpireAndRenew) {
  auto s = Open(1);
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  ASSERT_TRUE(Put(*s, a).ok());
  auto lease = s->AcquireLease({a.key}, absl::Seconds(5), kOwner);
  ASSERT_TRUE(lease.ok());
  now_ += absl::Seconds(4);
  ASSERT_TRUE(s->RenewLease(*lease, absl::Seconds(5), "w").ok());
  now_ += absl::Seconds(4);  // 8 s after acquiring, 4 s after renewing
  EXPECT_EQ(Put(*s, b).status().code(), absl::StatusCode::kResourceExhausted);
  now_ += absl::Seconds(1);  // renewal's TTL passed: the lease is gone
  ASSERT_EQ(*Put(*s, b), PutOutcome::kStored);
  EXPECT_FALSE(Has(*s, a));
  EXPECT_EQ(s->RenewLease(*lease, absl::Seconds(5), "w").code(),
            absl::StatusCode::kNotFound);
  const StoreStats st = s->Stats();
  EXPECT_EQ(st.expired_leases, 1u);
  EXPECT_EQ(st.active_leases, 0u);
  EXPECT_EQ(st.leased_bytes, 0u);
}

TEST_F(KvStoreTest, LeaseTtlIsCappedAndValidated) {
  auto s = Open(1);
  const TestBlock a = MakeTestBlock(1);
  ASSERT_TRUE(Put(*s, a).ok());
  EXPECT_EQ(s->AcquireLease({a.key}, absl::Seconds(-1), kOwner).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(s->AcquireLease({a.key}, absl::Hours(5), kOwner).ok());  // capped at 10 s
  now_ += absl::Seconds(11);
  EXPECT_EQ(s->Stats().leased_blocks, 0u);
}

TEST_F(KvStoreTest, OverlappingLeasesPinUntilBothEnd) {
  auto s = Open(1);
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  ASSERT_TRUE(Put(*s, a).ok());
  auto l1 = s->AcquireLease({a.key, a.key}, absl::Seconds(5), kOwner);
  auto l2 =
      s->AcquireLease({a.key, b.key}, absl::Seconds(5), kOwner);  // b absent: skipped
  ASSERT_TRUE(l1.ok() && l2.ok());
  ASSERT_TRUE(s->ReleaseLease(*l1, "w").ok());
  EXPECT_EQ(Put(*s, b).status().code(), absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(s->ReleaseLease(*l2, "w").ok());
  EXPECT_TRUE(Put(*s, b).ok());
}

TEST_F(KvStoreTest, LeasePresentReportsAndPinsExactlyThePresentBlocks) {
  auto s = Open(2);
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2), c = MakeTestBlock(3);
  ASSERT_TRUE(Put(*s, a).ok());
  ASSERT_TRUE(Put(*s, b).ok());
  std::vector<bool> present;
  auto lease = s->LeasePresent({c.key, a.key, a.key}, absl::Seconds(5), kOwner, &present);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(present, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(s->Stats().leased_blocks, 1u);
  // a was touched and is pinned: c evicts b, not a.
  ASSERT_EQ(*Put(*s, c), PutOutcome::kStored);
  EXPECT_TRUE(Has(*s, a));
  EXPECT_FALSE(Has(*s, b));
  EXPECT_EQ(s->Delete({a.key})[0].code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s->ReleaseLease(*lease, "w").ok());
  EXPECT_EQ(s->LeasePresent({a.key}, absl::Seconds(-1), kOwner, &present).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(KvStoreTest, LeasesBelongToTheirPrincipal) {
  auto s = Open(2);
  const TestBlock a = MakeTestBlock(1);
  ASSERT_TRUE(Put(*s, a).ok());
  auto lease = s->AcquireLease({a.key}, absl::Seconds(5), kOwner);
  ASSERT_TRUE(lease.ok());
  // Another principal can neither renew nor release it, and learns nothing:
  // the answer is that of an unknown lease.
  EXPECT_EQ(s->RenewLease(*lease, absl::Seconds(5), "intruder").code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(s->ReleaseLease(*lease, "intruder").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s->Stats().active_leases, 1u);
  EXPECT_EQ(s->Delete({a.key})[0].code(), absl::StatusCode::kFailedPrecondition);
  // The same principal from another client (the decode worker a prefill
  // worker handed the lease to) can; so can an operator (kAnyPrincipal).
  ASSERT_TRUE(s->RenewLease(*lease, absl::Seconds(5), "w").ok());
  ASSERT_TRUE(s->ReleaseLease(*lease, "w").ok());
  auto again = s->AcquireLease({a.key}, absl::Seconds(5), kOwner);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE(s->ReleaseLease(*again, kAnyPrincipal).ok());
  EXPECT_EQ(s->Stats().active_leases, 0u);
}

TEST_F(KvStoreTest, LeaseIdsAreRandomAndNeverZero) {
  auto s = Open(1);
  const TestBlock a = MakeTestBlock(1);
  ASSERT_TRUE(Put(*s, a).ok());
  std::vector<LeaseId> ids;
  for (int i = 0; i < 64; ++i) {
    auto lease = s->AcquireLease({a.key}, absl::Seconds(5), kOwner);
    ASSERT_TRUE(lease.ok());
    ASSERT_NE(*lease, 0u);
    ids.push_back(*lease);
  }
  // Not a sequence: consecutive ids differ in many bits, and the high bits
  // are used (a counter would stay small).
  int small = 0, close = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    small += ids[i] < (uint64_t{1} << 40);
    if (i > 0)
      close += (ids[i] > ids[i - 1] ? ids[i] - ids[i - 1] : ids[i - 1] - ids[i]) < 1000;
  }
  EXPECT_LE(small, 1);
  EXPECT_EQ(close, 0);
}

TEST_F(KvStoreTest, LeasingNothingTakesNoLease) {
  auto s = Open(2);
  const TestBlock a = MakeTestBlock(1), absent = MakeTestBlock(2);
  ASSERT_TRUE(Put(*s, a).ok());
  std::vector<bool> present;
  for (int i = 0; i < 100; ++i) {
    auto lease = s->LeasePresent({absent.key}, absl::Seconds(5), kOwner, &present);
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(*lease, 0u);
    EXPECT_EQ(present, std::vector<bool>{false});
    auto acquired = s->AcquireLease({absent.key}, absl::Seconds(5), kOwner);
    ASSERT_TRUE(acquired.ok());
    EXPECT_EQ(*acquired, 0u);
  }
  EXPECT_EQ(s->Stats().active_leases, 0u);
}

TEST_F(KvStoreTest, OpenLeasesAreCappedPerClientAndInAll) {
  auto store = KvStore::Open({.capacity_bytes = 4 * kBlockBytes,
                              .max_lease_ttl = absl::Seconds(10),
                              .clock = [this] { return now_; },
                              .max_leases = 5,
                              .max_leases_per_client = 3});
  ASSERT_TRUE(store.ok());
  KvStore& s = **store;
  const TestBlock a = MakeTestBlock(1);
  ASSERT_TRUE(Put(s, a).ok());
  const LeaseOwner x{.principal = "w", .client = "w@x"};
  const LeaseOwner y{.principal = "w", .client = "w@y"};
  std::vector<LeaseId> held;
  for (int i = 0; i < 3; ++i)
    held.push_back(*s.AcquireLease({a.key}, absl::Seconds(5), x));
  auto refused = s.AcquireLease({a.key}, absl::Seconds(5), x);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("w@x"), std::string::npos)
      << refused.status();
  std::vector<bool> present;
  EXPECT_EQ(s.LeasePresent({a.key}, absl::Seconds(5), x, &present).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Another client still can, up to the store's limit.
  ASSERT_TRUE(s.AcquireLease({a.key}, absl::Seconds(5), y).ok());
  ASSERT_TRUE(s.AcquireLease({a.key}, absl::Seconds(5), y).ok());
  EXPECT_EQ(s.AcquireLease({a.key}, absl::Seconds(5), y).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Releasing (here by the same principal from client y) gives x its room back,
  // and so does expiry.
  ASSERT_TRUE(s.ReleaseLease(held[0], "w").ok());
  EXPECT_TRUE(s.AcquireLease({a.key}, absl::Seconds(5), x).ok());
  now_ += absl::Seconds(6);
  EXPECT_EQ(s.Stats().active_leases, 0u);
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(s.AcquireLease({a.key}, absl::Seconds(5), x).ok());
}

TEST_F(KvStoreTest, BlockLargerThanCapacityIsRejected) {
  auto store = KvStore::Open({.capacity_bytes = kBlockBytes - 1});
  ASSERT_TRUE(store.ok());
  EXPECT_EQ(Put(**store, MakeTestBlock(1)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(KvStoreTest, ReadersKeepBytesAfterEviction) {
  auto s = Open(1);
  const TestBlock a = MakeTestBlock(1);
  ASSERT_TRUE(Put(*s, a).ok());
  auto got = s->Get({a.key});
  ASSERT_TRUE(Put(*s, MakeTestBlock(2)).ok());  // evicts a
  EXPECT_FALSE(Has(*s, a));
  EXPECT_EQ(*got[0]->bytes, a.bytes);  // the reader's reference stays valid
}

// Several writers and readers at once; run under --config=tsan to check the
// locking (see kvstore/README.md).
TEST(KvStoreConcurrencyTest, ConcurrentPutsAndGets) {
  constexpr int kThreads = 4;
  constexpr int kBlocksPerThread = 200;
  auto store = KvStore::Open({.capacity_bytes = 300 * kBlockBytes});
  ASSERT_TRUE(store.ok());
  KvStore& s = **store;
  std::vector<TestBlock> blocks;
  for (int i = 0; i < kThreads * kBlocksPerThread; ++i)
    blocks.push_back(MakeTestBlock(i));
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBlocksPerThread; ++i) {
        // Writers overlap: thread t writes its own blocks and its neighbour's.
        const TestBlock& mine = blocks[t * kBlocksPerThread + i];
        const TestBlock& other = blocks[((t + 1) % kThreads) * kBlocksPerThread + i];
        if (!s.Put(mine.key, mine.meta, mine.bytes).ok()) ++corrupt;
        if (!s.Put(other.key, other.meta, other.bytes).ok()) ++corrupt;
        auto lease = s.AcquireLease({mine.key, other.key}, absl::Seconds(1), kOwner);
        for (const auto& got : s.Get({mine.key, other.key})) {
          if (got.ok() && BlockChecksum(*got->bytes) != got->meta.checksum) ++corrupt;
        }
        if (lease.ok()) (void)s.ReleaseLease(*lease, "w");
        (void)s.Stats();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(corrupt.load(), 0);
  const StoreStats st = s.Stats();
  EXPECT_EQ(st.puts + st.duplicate_puts, 2u * kThreads * kBlocksPerThread);
  EXPECT_LE(st.bytes, st.capacity_bytes);
  EXPECT_EQ(st.bytes, st.blocks * kBlockBytes);
  EXPECT_EQ(st.puts - st.evictions, st.blocks);
  EXPECT_EQ(st.leased_blocks, 0u);
}

// A lookup with a lease is one step: every block it reports present is
// pinned, even while writers evict at full capacity (with a separate presence
// check and lease, a block could be evicted in between and the Get fail).
TEST(KvStoreConcurrencyTest, LeasePresentPinsWhatItReportsUnderEviction) {
  constexpr int kWriters = 2;
  constexpr int kBlocks = 400;
  auto store = KvStore::Open({.capacity_bytes = 8 * kBlockBytes});
  ASSERT_TRUE(store.ok());
  KvStore& s = **store;
  std::vector<TestBlock> blocks;
  for (int i = 0; i < kBlocks; ++i) blocks.push_back(MakeTestBlock(i));
  std::atomic<bool> done{false};
  std::atomic<int> latest{0};  // index of the block put last
  std::atomic<int> lookups{0}, reported{0}, lost{0};
  std::thread reader([&] {
    std::vector<BlockKey> keys(16);
    std::vector<bool> present;
    while (!done) {
      // The 16 blocks up to the latest: some present, some being evicted.
      const int last = latest;
      for (int i = 0; i < 16; ++i) keys[i] = blocks[(last + kBlocks - i) % kBlocks].key;
      auto lease = s.LeasePresent(keys, absl::Seconds(5), kOwner, &present);
      if (!lease.ok()) continue;
      std::vector<BlockKey> found;
      for (size_t i = 0; i < keys.size(); ++i) {
        if (present[i]) found.push_back(keys[i]);
      }
      for (const auto& got : s.Get(found)) {
        if (!got.ok()) ++lost;
      }
      reported += static_cast<int>(found.size());
      ++lookups;
      (void)s.ReleaseLease(*lease, "w");
    }
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      // At least two rounds, then until the reader has looked often enough.
      const absl::Time give_up = absl::Now() + absl::Seconds(10);
      for (int round = 0; round < 2 || (lookups < 300 && absl::Now() < give_up);
           ++round) {
        for (int i = w; i < kBlocks; i += kWriters) {
          (void)s.Put(blocks[i].key, blocks[i].meta, blocks[i].bytes);
          latest = i;
          std::this_thread::yield();  // let the reader in on a 2-core machine
          (void)s.Delete({blocks[(i + kBlocks - 3) % kBlocks].key});
        }
        // The next round's puts are new again.
        for (int i = w; i < kBlocks; i += kWriters) (void)s.Delete({blocks[i].key});
      }
    });
  }
  for (std::thread& t : writers) t.join();
  done = true;
  reader.join();
  EXPECT_EQ(lost.load(), 0);
  EXPECT_GT(reported.load(), 0);
  EXPECT_EQ(s.Stats().leased_blocks, 0u);
}

}  // namespace
}  // namespace kvq::kvstore

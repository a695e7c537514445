// The client against the real service on loopback, in one process (the
// cross-process tests are in tests/integration/store_test.cc).
#include "services/store/client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvstore/kv_store.h"
#include "prometheus/text_serializer.h"
#include "services/common/metrics.h"
#include "services/store/store_metrics.h"
#include "services/store/store_service.h"
#include "tests/kvstore/test_blocks.h"

namespace kvq::store {
namespace {

using kvstore::testing::MakeTestBlock;
using kvstore::testing::TestBlock;

kvstore::Block ToBlock(const TestBlock& t) {
  return {t.key, t.meta, std::make_shared<const std::string>(t.bytes)};
}

// A KvStore service on 127.0.0.1 (port 0 unless given).
class InProcessStore {
 public:
  explicit InProcessStore(uint64_t capacity, int port = 0)
      : endpoint_(*services::MetricsEndpoint::Start({.role = "store"})),
        rpc_metrics_(endpoint_->registry(), "store"),
        store_metrics_(endpoint_->registry(), endpoint_->labels()) {
    engine_ = *kvstore::KvStore::Open({.capacity_bytes = capacity});
    service_ = std::make_unique<StoreService>(engine_.get(), StoreService::Options{},
                                              &rpc_metrics_, &store_metrics_);
    grpc::ServerBuilder builder;
    builder.AddListeningPort(absl::StrCat("127.0.0.1:", port),
                             grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
  }
  ~InProcessStore() { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  kvstore::KvStore& engine() { return *engine_; }
  std::string MetricsText() {
    return prometheus::TextSerializer().Serialize(endpoint_->registry().Collect());
  }

 private:
  std::unique_ptr<services::MetricsEndpoint> endpoint_;
  services::RpcMetrics rpc_metrics_;
  StoreMetrics store_metrics_;
  std::unique_ptr<kvstore::KvStore> engine_;
  std::unique_ptr<StoreService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

std::unique_ptr<StoreClient> Connect(std::vector<std::string> addresses,
                                     uint32_t chunk_bytes = 100) {
  auto c = StoreClient::Create({.addresses = std::move(addresses),
                                .deadline = absl::Seconds(10),
                                .chunk_bytes = chunk_bytes});
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

TEST(StoreClientTest, PutGetLookupLeaseDelete) {
  InProcessStore server(1 << 20);
  auto client = Connect({server.address()});
  std::vector<kvstore::Block> blocks;
  std::vector<kvstore::BlockKey> keys;
  for (int i = 0; i < 6; ++i) {
    blocks.push_back(ToBlock(MakeTestBlock(i)));
    keys.push_back(blocks.back().key);
  }
  auto put = client->PutBlocks(absl::MakeSpan(blocks).subspan(0, 4));
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->size(), 4u);
  for (kvstore::PutOutcome o : *put) EXPECT_EQ(o, kvstore::PutOutcome::kStored);
  auto again = client->PutBlocks(absl::MakeSpan(blocks).subspan(2, 3));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)[0], kvstore::PutOutcome::kAlreadyPresent);
  EXPECT_EQ((*again)[2], kvstore::PutOutcome::kStored);

  auto lookup = client->Lookup({keys[0], keys[1], keys[5], keys[2]});
  ASSERT_TRUE(lookup.ok());
  EXPECT_EQ(lookup->present_prefix, 2u);
  EXPECT_EQ(lookup->present, (std::vector<bool>{true, true, false, true}));
  EXPECT_TRUE(lookup->leases.empty());

  // With a TTL, Lookup leases exactly the blocks it reports present.
  auto leased = client->Lookup({keys[1], keys[5]}, absl::Seconds(30));
  ASSERT_TRUE(leased.ok());
  EXPECT_EQ(leased->present, (std::vector<bool>{true, false}));
  ASSERT_EQ(leased->leases.size(), 1u);
  EXPECT_EQ(server.engine().Stats().leased_blocks, 1u);
  EXPECT_EQ(client->Delete({keys[1]})[0].code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(client->ReleaseLeases(leased->leases).ok());

  // 100-byte chunks: each 384-byte layer part arrives in several messages.
  auto got = client->GetBlocks(keys, absl::Seconds(30));
  ASSERT_TRUE(got.ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(got->blocks[i].ok()) << i << got->blocks[i].status();
    EXPECT_EQ(*got->blocks[i]->bytes, *blocks[i].bytes);
    EXPECT_EQ(got->blocks[i]->meta.checksum, blocks[i].meta.checksum);
  }
  EXPECT_EQ(got->blocks[5].status().code(), absl::StatusCode::kNotFound);
  ASSERT_EQ(got->leases.size(), 1u);
  EXPECT_EQ(server.engine().Stats().leased_blocks, 5u);

  std::vector<absl::Status> del = client->Delete({keys[0]});
  EXPECT_EQ(del[0].code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(client->RenewLeases(got->leases, absl::Seconds(5)).ok());
  ASSERT_TRUE(client->ReleaseLeases(got->leases).ok());
  EXPECT_EQ(client->ReleaseLeases(got->leases).code(), absl::StatusCode::kNotFound);
  del = client->Delete({keys[0], keys[5]});
  EXPECT_TRUE(del[0].ok());
  EXPECT_EQ(del[1].code(), absl::StatusCode::kNotFound);

  auto stats = client->Stats(0);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->blocks, 4u);
  EXPECT_EQ(stats->duplicate_puts, 2u);
  EXPECT_EQ(stats->hits, 5u);
  EXPECT_EQ(stats->misses, 1u);
}

TEST(StoreClientTest, WriterStreamsLayersAndCommitsAtomically) {
  InProcessStore server(1 << 20);
  auto client = Connect({server.address()});
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  auto w = client->OpenWriter();
  ASSERT_TRUE(w.ok());
  auto ia = (*w)->Announce(a.key, a.meta);
  auto ib = (*w)->Announce(b.key, b.meta);
  ASSERT_TRUE(ia.ok() && ib.ok());
  const size_t lb = a.meta.layer_bytes(0);
  for (int layer = 0; layer < 5; ++layer) {
    ASSERT_TRUE(
        (*w)->WriteLayer(*ia, layer, absl::string_view(a.bytes).substr(layer * lb, lb))
            .ok());
    ASSERT_TRUE(
        (*w)->WriteLayer(*ib, layer, absl::string_view(b.bytes).substr(layer * lb, lb))
            .ok());
    if (layer < 4) {
      // Give the server time to apply what was sent: still nothing visible.
      absl::SleepFor(absl::Milliseconds(20));
      EXPECT_EQ(server.engine().Stats().blocks, 0u) << "layer " << layer;
    }
  }
  EXPECT_EQ((*w)->WriteLayer(*ia, 0, "short").code(), absl::StatusCode::kInvalidArgument);
  auto outcomes = (*w)->Finish();
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  EXPECT_EQ(outcomes->size(), 2u);
  EXPECT_EQ(server.engine().Stats().blocks, 2u);
}

TEST(StoreClientTest, WriterSealsBlocksAfterTheirLastLayer) {
  InProcessStore server(1 << 20);
  auto client = Connect({server.address()});
  const TestBlock a = MakeTestBlock(1);
  auto w = client->OpenWriter();
  ASSERT_TRUE(w.ok());
  kvstore::BlockMeta unsealed = a.meta;
  unsealed.checksum = 0;
  auto id = (*w)->AnnounceUnsealed(a.key, unsealed);
  ASSERT_TRUE(id.ok());
  const size_t lb = a.meta.layer_bytes(0);
  for (int layer = 0; layer < 5; ++layer) {
    ASSERT_TRUE(
        (*w)->WriteLayer(*id, layer, absl::string_view(a.bytes).substr(layer * lb, lb))
            .ok());
  }
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(server.engine().Stats().blocks, 0u);  // all layers, no seal yet
  ASSERT_TRUE((*w)->Seal(*id, kvstore::BlockChecksum(a.bytes)).ok());
  EXPECT_EQ((*w)->Seal(*id, 1).code(), absl::StatusCode::kInvalidArgument);
  auto outcomes = (*w)->Finish();
  ASSERT_TRUE(outcomes.ok()) << outcomes.status();
  auto got = client->GetBlocks({a.key});
  ASSERT_TRUE(got.ok() && got->blocks[0].ok());
  EXPECT_EQ(*got->blocks[0]->bytes, a.bytes);
  EXPECT_EQ(got->blocks[0]->meta.checksum, a.meta.checksum);
}

TEST(StoreClientTest, ServiceErrorsReachTheClientWithTheirCodes) {
  InProcessStore server(3 * MakeTestBlock(0).bytes.size());
  auto client = Connect({server.address()});
  kvstore::Block bad = ToBlock(MakeTestBlock(1));
  bad.meta.checksum ^= 1;
  EXPECT_EQ(client->PutBlocks({bad}).status().code(), absl::StatusCode::kDataLoss);
  std::vector<kvstore::Block> three = {
      ToBlock(MakeTestBlock(2)), ToBlock(MakeTestBlock(3)), ToBlock(MakeTestBlock(4))};
  ASSERT_TRUE(client->PutBlocks(three).ok());
  auto got =
      client->GetBlocks({three[0].key, three[1].key, three[2].key}, absl::Seconds(30));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(client->PutBlocks({ToBlock(MakeTestBlock(5))}).status().code(),
            absl::StatusCode::kResourceExhausted);
  const std::string metrics = server.MetricsText();
  EXPECT_TRUE(absl::StrContains(
      metrics,
      "kvq_rpc_errors_total{code=\"DATA_LOSS\",method=\"PutBlocks\",role=\"store\"} 1"))
      << metrics;
  EXPECT_TRUE(
      absl::StrContains(metrics, "code=\"RESOURCE_EXHAUSTED\",method=\"PutBlocks\""));
  EXPECT_TRUE(
      absl::StrContains(metrics, "kvq_kvstore_rejected_puts_total{role=\"store\"} 2"))
      << metrics;
  EXPECT_TRUE(absl::StrContains(metrics, "kvq_kvstore_blocks{role=\"store\"} 3"));
}

TEST(StoreClientTest, RendezvousShardingIsStableAndMovesOnlyToNewShards) {
  const std::vector<std::string> abc = {"10.0.0.1:7070", "10.0.0.2:7070",
                                        "10.0.0.3:7070"};
  auto c1 = Connect(abc);
  auto c2 = Connect({abc[2], abc[0], abc[1]});  // same shards, another order
  auto c4 = Connect({abc[0], abc[1], abc[2], "10.0.0.4:7070"});
  std::vector<int> per_shard(3, 0);
  int moved = 0;
  constexpr int kKeys = 3000;
  for (int i = 0; i < kKeys; ++i) {
    const kvstore::BlockKey key = MakeTestBlock(i).key;
    const std::string& a1 = c1->address(c1->ShardOf(key));
    EXPECT_EQ(a1, c2->address(c2->ShardOf(key)));
    ++per_shard[c1->ShardOf(key)];
    const std::string& a4 = c4->address(c4->ShardOf(key));
    if (a4 != a1) {
      EXPECT_EQ(a4, "10.0.0.4:7070");  // a key moves only to the new shard
      ++moved;
    }
  }
  for (int n : per_shard) EXPECT_GT(n, kKeys / 4);  // roughly a third each
  EXPECT_GT(moved, kKeys / 6);                      // about a quarter moves
  EXPECT_LT(moved, kKeys / 3);
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

TEST(StoreClientTest, RetriesUnavailableUntilTheStoreComesUp) {
  const int port = FreePort();
  auto client = StoreClient::Create({.addresses = {absl::StrCat("127.0.0.1:", port)},
                                     .deadline = absl::Seconds(2),
                                     .max_attempts = 8,
                                     .initial_backoff = absl::Milliseconds(100),
                                     .max_backoff = absl::Milliseconds(400)});
  ASSERT_TRUE(client.ok());
  std::unique_ptr<InProcessStore> server;
  std::thread starter([&] {
    absl::SleepFor(absl::Milliseconds(300));
    server = std::make_unique<InProcessStore>(1 << 20, port);
  });
  auto stats = (*client)->Stats(0);
  starter.join();
  EXPECT_TRUE(stats.ok()) << stats.status();
  // Without retries the same call fails at once.
  auto once = StoreClient::Create({.addresses = {"127.0.0.1:1"}, .max_attempts = 1});
  EXPECT_EQ((*once)->Stats(0).status().code(), absl::StatusCode::kUnavailable);
}

TEST(StoreClientTest, CreateValidatesOptions) {
  EXPECT_FALSE(StoreClient::Create({}).ok());
  EXPECT_FALSE(StoreClient::Create({.addresses = {"a:1", "a:1"}}).ok());
  EXPECT_FALSE(StoreClient::Create({.addresses = {"a:1"}, .chunk_bytes = 4 << 20}).ok());
  EXPECT_EQ(ParseAddressList("a:1, b:2,,c:3"),
            (std::vector<std::string>{"a:1", " b:2", "c:3"}));
}

}  // namespace
}  // namespace kvq::store

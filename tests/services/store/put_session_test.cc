#include "services/store/put_session.h"

#include <memory>

#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "gtest/gtest.h"
#include "kvstore/kv_store.h"
#include "services/store/proto_convert.h"
#include "tests/kvstore/test_blocks.h"

namespace kvq::store {
namespace {

using kvstore::testing::MakeTestBlock;
using kvstore::testing::TestBlock;

class PutSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = kvstore::KvStore::Open({.capacity_bytes = 1 << 20});
    ASSERT_TRUE(s.ok());
    store_ = std::move(*s);
  }
  static v1::BlockHeader Header(uint32_t id, const TestBlock& b) {
    v1::BlockHeader h;
    h.set_block_id(id);
    h.set_key(b.key.ToBytes());
    *h.mutable_meta() = MetaToProto(b.meta);
    return h;
  }
  static void AddLayer(v1::PutBlocksRequest& r, uint32_t id, const TestBlock& b,
                       int layer) {
    const size_t lb = b.meta.layer_bytes(0);
    v1::BlockChunk* c = r.add_chunks();
    c->set_block_id(id);
    c->set_layer(layer);
    c->set_offset(0);
    c->set_data(b.bytes.substr(layer * lb, lb));
  }
  bool Visible(const TestBlock& b) { return store_->Contains({b.key})[0]; }

  std::unique_ptr<kvstore::KvStore> store_;
};

TEST_F(PutSessionTest, InterleavedLayersCommitEachBlockWhenComplete) {
  PutSession session(store_.get(), {});
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  v1::PutBlocksRequest headers;
  *headers.add_headers() = Header(10, a);
  *headers.add_headers() = Header(20, b);
  ASSERT_TRUE(session.Apply(headers).ok());
  for (int layer = 0; layer < 5; ++layer) {
    EXPECT_FALSE(Visible(a));
    EXPECT_FALSE(Visible(b));
    v1::PutBlocksRequest r;
    AddLayer(r, 20, b, layer);
    if (layer < 4) AddLayer(r, 10, a, layer);
    ASSERT_TRUE(session.Apply(r).ok());
  }
  EXPECT_TRUE(Visible(b));
  EXPECT_FALSE(Visible(a));  // still missing its last layer
  EXPECT_EQ(session.Finish().status().code(), absl::StatusCode::kInvalidArgument);
}

// The server's path: encoded messages, headers and chunks in one message,
// chunk data decoded straight into the block.
TEST_F(PutSessionTest, EncodedMessagesCommitLikeParsedOnes) {
  PutSession session(store_.get(), {});
  const TestBlock a = MakeTestBlock(1);
  for (int layer = 0; layer < 5; ++layer) {
    v1::PutBlocksRequest r;
    if (layer == 0) *r.add_headers() = Header(0, a);
    AddLayer(r, 0, a, layer);
    const std::string bytes = r.SerializeAsString();
    google::protobuf::io::ArrayInputStream in(bytes.data(),
                                              static_cast<int>(bytes.size()), 5);
    ASSERT_TRUE(session.ApplyEncoded(&in).ok());
    EXPECT_EQ(Visible(a), layer == 4);
  }
  absl::StatusOr<v1::PutBlocksResponse> response = session.Finish();
  ASSERT_TRUE(response.ok());
  ASSERT_EQ(response->results_size(), 1);
  EXPECT_EQ(response->results(0).outcome(), v1::PUT_OUTCOME_STORED);
  std::vector<absl::StatusOr<kvstore::Block>> got = store_->Get({a.key});
  ASSERT_TRUE(got[0].ok());
  EXPECT_EQ(*got[0]->bytes, a.bytes);
}

TEST_F(PutSessionTest, EncodedMessageCutShortIsInvalidArgument) {
  PutSession session(store_.get(), {});
  const TestBlock a = MakeTestBlock(1);
  v1::PutBlocksRequest r;
  *r.add_headers() = Header(0, a);
  AddLayer(r, 0, a, 0);
  const std::string bytes = r.SerializeAsString();
  google::protobuf::io::ArrayInputStream in(bytes.data(),
                                            static_cast<int>(bytes.size()) - 3);
  EXPECT_EQ(session.ApplyEncoded(&in).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(PutSessionTest, ResultsInHeaderOrderWithDuplicates) {
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  ASSERT_TRUE(store_->Put(b.key, b.meta, b.bytes).ok());
  PutSession session(store_.get(), {});
  v1::PutBlocksRequest r;
  *r.add_headers() = Header(0, a);
  *r.add_headers() = Header(1, b);
  for (int layer = 0; layer < 5; ++layer) {
    AddLayer(r, 1, b, layer);
    AddLayer(r, 0, a, layer);
  }
  ASSERT_TRUE(session.Apply(r).ok());
  auto resp = session.Finish();
  ASSERT_TRUE(resp.ok()) << resp.status();
  ASSERT_EQ(resp->results_size(), 2);
  EXPECT_EQ(resp->results(0).key(), a.key.ToBytes());
  EXPECT_EQ(resp->results(0).outcome(), v1::PUT_OUTCOME_STORED);
  EXPECT_EQ(resp->results(1).outcome(), v1::PUT_OUTCOME_ALREADY_PRESENT);
  EXPECT_EQ(store_->Stats().duplicate_puts, 1u);
}

TEST_F(PutSessionTest, BadChecksumIsDataLossAndNothingStored) {
  TestBlock a = MakeTestBlock(1);
  a.meta.checksum ^= 1;
  PutSession session(store_.get(), {});
  v1::PutBlocksRequest r;
  *r.add_headers() = Header(0, a);
  for (int layer = 0; layer < 5; ++layer) AddLayer(r, 0, a, layer);
  EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kDataLoss);
  EXPECT_FALSE(Visible(a));
}

TEST_F(PutSessionTest, ProtocolErrorsAreInvalidArgument) {
  const TestBlock a = MakeTestBlock(1);
  {
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    AddLayer(r, 0, a, 0);  // chunk before its header
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    *r.add_headers() = Header(0, a);
    *r.add_headers() = Header(0, MakeTestBlock(2));  // id reused
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    v1::BlockHeader h = Header(0, a);
    h.set_key("short");
    *r.add_headers() = h;
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    v1::BlockHeader h = Header(0, a);
    h.mutable_meta()->mutable_encoding()->set_version(7);
    *r.add_headers() = h;
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    v1::BlockHeader h = Header(0, a);
    h.mutable_meta()->mutable_encoding()->set_bits(70000);  // overflows u16
    *r.add_headers() = h;
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    *r.add_headers() = Header(0, a);
    AddLayer(r, 0, a, 0);
    r.mutable_chunks(0)->mutable_data()->append("x");  // past the layer's part
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(store_->Stats().blocks, 0u);
}

TEST_F(PutSessionTest, ChecksumCanFollowTheLayers) {
  const TestBlock a = MakeTestBlock(1);
  PutSession session(store_.get(), {});
  v1::PutBlocksRequest r;
  v1::BlockHeader h = Header(0, a);
  h.set_checksum_follows(true);
  h.mutable_meta()->set_checksum(0);  // unknown when the header goes out
  *r.add_headers() = h;
  for (int layer = 0; layer < 5; ++layer) AddLayer(r, 0, a, layer);
  ASSERT_TRUE(session.Apply(r).ok());
  EXPECT_FALSE(Visible(a));  // every layer is there, the seal is not
  v1::PutBlocksRequest seal;
  seal.add_seals()->set_block_id(0);
  seal.mutable_seals(0)->set_checksum(a.meta.checksum);
  ASSERT_TRUE(session.Apply(seal).ok());
  EXPECT_TRUE(Visible(a));
  EXPECT_EQ(session.Apply(seal).code(), absl::StatusCode::kInvalidArgument);  // twice
  auto resp = session.Finish();
  ASSERT_TRUE(resp.ok());
  EXPECT_EQ(resp->results(0).outcome(), v1::PUT_OUTCOME_STORED);
}

TEST_F(PutSessionTest, SealErrors) {
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  {  // A wrong seal is DATA_LOSS; nothing stored.
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    v1::BlockHeader h = Header(0, a);
    h.set_checksum_follows(true);
    *r.add_headers() = h;
    r.add_seals()->set_block_id(0);
    r.mutable_seals(0)->set_checksum(a.meta.checksum ^ 1);
    ASSERT_TRUE(session.Apply(r).ok());  // sealed before its layers: fine
    v1::PutBlocksRequest layers;
    for (int layer = 0; layer < 5; ++layer) AddLayer(layers, 0, a, layer);
    EXPECT_EQ(session.Apply(layers).code(), absl::StatusCode::kDataLoss);
    EXPECT_FALSE(Visible(a));
  }
  {  // A seal for a block announced with its checksum.
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    *r.add_headers() = Header(0, b);
    r.add_seals()->set_block_id(0);
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  {  // Complete but never sealed: the stream's end reports it; not stored.
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    v1::BlockHeader h = Header(0, b);
    h.set_checksum_follows(true);
    *r.add_headers() = h;
    for (int layer = 0; layer < 5; ++layer) AddLayer(r, 0, b, layer);
    ASSERT_TRUE(session.Apply(r).ok());
    EXPECT_EQ(session.Finish().status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(Visible(b));
  }
}

TEST_F(PutSessionTest, PendingBytesAreBounded) {
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  PutSession session(store_.get(), {.max_pending_bytes = a.bytes.size() + 10});
  v1::PutBlocksRequest r;
  *r.add_headers() = Header(0, a);
  *r.add_headers() = Header(1, b);
  EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
}

// Sends every layer of block `id` (b) on `session`.
absl::Status SendLayers(PutSession& session, uint32_t id, const TestBlock& b) {
  for (int layer = 0; layer < b.meta.n_layers; ++layer) {
    v1::PutBlocksRequest r;
    const size_t lb = b.meta.layer_bytes(0);
    v1::BlockChunk* c = r.add_chunks();
    c->set_block_id(id);
    c->set_layer(layer);
    c->set_data(b.bytes.substr(layer * lb, lb));
    if (absl::Status s = session.Apply(r); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The store-wide budget of blocks being assembled: shared by sessions, taken
// when a block's first chunk arrives, given back when the block commits or
// its session ends.
TEST_F(PutSessionTest, AssemblingBytesShareOneBudget) {
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2), c = MakeTestBlock(3);
  const uint64_t block = a.bytes.size();
  const uint64_t ann = PutSession::AnnounceBytes(a.meta);  // a header's bookkeeping
  PutSession::AssemblyBudget budget(2 * block + block / 2, 0);
  auto one = std::make_unique<PutSession>(
      store_.get(), PutSession::Options{.budget = &budget, .client = "x"});
  PutSession two(store_.get(), {.budget = &budget, .client = "y"});
  v1::PutBlocksRequest r1, r2, r3;
  *r1.add_headers() = Header(0, a);
  *r1.add_headers() = Header(1, b);
  ASSERT_TRUE(one->Apply(r1).ok());
  EXPECT_EQ(budget.used(), 2 * ann);  // headers take only their bookkeeping
  v1::PutBlocksRequest first_layers;
  AddLayer(first_layers, 0, a, 0);
  AddLayer(first_layers, 1, b, 0);
  ASSERT_TRUE(one->Apply(first_layers).ok());
  // Whole blocks once their bytes start (their bookkeeping included).
  EXPECT_EQ(budget.used(), 2 * block);
  EXPECT_EQ(budget.used_by("x"), 2 * block);
  *r2.add_headers() = Header(0, c);
  ASSERT_TRUE(two.Apply(r2).ok());
  AddLayer(r3, 0, c, 0);
  const absl::Status refused = two.Apply(r3);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused;
  EXPECT_NE(refused.message().find("--max_assembling_bytes"), std::string::npos);
  EXPECT_EQ(budget.used(), 2 * block + ann);  // the refused chunk took nothing
  // A block larger than the whole budget is refused at its header.
  PutSession::AssemblyBudget tiny(block - 1, 0);
  PutSession small(store_.get(), {.budget = &tiny});
  const absl::Status too_big = small.Apply(r2);
  EXPECT_EQ(too_big.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(too_big.message().find("larger than"), std::string::npos) << too_big;
  // Block a completes and commits: its bytes go back.
  for (int layer = 1; layer < a.meta.n_layers; ++layer) {
    v1::PutBlocksRequest r;
    AddLayer(r, 0, a, layer);
    ASSERT_TRUE(one->Apply(r).ok());
  }
  EXPECT_TRUE(Visible(a));
  EXPECT_EQ(budget.used(), block + ann);
  PutSession three(store_.get(), {.budget = &budget, .client = "y"});
  v1::PutBlocksRequest r4;
  *r4.add_headers() = Header(0, c);
  AddLayer(r4, 0, c, 0);
  ASSERT_TRUE(three.Apply(r4).ok());
  EXPECT_EQ(budget.used(), 2 * block + ann);
  // A stream that ends with b incomplete gives its bytes back too, once
  // (again on destruction would be a second time).
  one->DropIncomplete();
  EXPECT_EQ(budget.used(), block + ann);
  EXPECT_EQ(budget.used_by("x"), 0u);
  one.reset();
  EXPECT_EQ(budget.used(), block + ann);
  EXPECT_FALSE(Visible(b));
}

// Issue 14: a header announcing a huge block, with no data, starves nobody;
// and one client cannot take more than its share of the budget.
TEST_F(PutSessionTest, AnnouncedButUnsentBlocksBlockNoOne) {
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2), c = MakeTestBlock(3);
  const uint64_t block = a.bytes.size();
  const uint64_t ann = PutSession::AnnounceBytes(a.meta);
  PutSession::AssemblyBudget budget(3 * block + 600 * ann, 2 * block + 500 * ann);
  // The greedy client announces as much as its stream may hold, sends nothing.
  PutSession greedy(
      store_.get(),
      {.max_pending_bytes = 1000 * block, .budget = &budget, .client = "greedy"});
  v1::PutBlocksRequest announce;
  for (int i = 0; i < 500; ++i)
    *announce.add_headers() = Header(i, MakeTestBlock(100 + i));
  ASSERT_TRUE(greedy.Apply(announce).ok());
  EXPECT_EQ(budget.used(), 500 * ann);  // bookkeeping only, not 500 blocks
  // ... and the bookkeeping is bounded too: one more header fits in the
  // client's share, 500 more do not.
  v1::PutBlocksRequest one_more;
  *one_more.add_headers() = Header(600, MakeTestBlock(700));
  PutSession greedy2(store_.get(), {.budget = &budget, .client = "greedy"});
  EXPECT_EQ(greedy2.Apply(one_more).code(), absl::StatusCode::kOk);
  EXPECT_EQ(greedy2.Apply(announce).code(), absl::StatusCode::kResourceExhausted);
  greedy2.DropIncomplete();
  // Another client's put goes through.
  PutSession other(store_.get(), {.budget = &budget, .client = "other"});
  v1::PutBlocksRequest h;
  *h.add_headers() = Header(0, a);
  ASSERT_TRUE(other.Apply(h).ok());
  ASSERT_TRUE(SendLayers(other, 0, a).ok());
  EXPECT_TRUE(Visible(a));
  // The greedy client starting two blocks hits its own limit, not the store's.
  v1::PutBlocksRequest starts;
  AddLayer(starts, 0, MakeTestBlock(100), 0);
  AddLayer(starts, 1, MakeTestBlock(101), 0);
  ASSERT_TRUE(greedy.Apply(starts).ok());
  v1::PutBlocksRequest third;
  AddLayer(third, 2, MakeTestBlock(102), 0);
  const absl::Status over = greedy.Apply(third);
  EXPECT_EQ(over.code(), absl::StatusCode::kResourceExhausted) << over;
  EXPECT_NE(over.message().find("client greedy"), std::string::npos) << over;
  EXPECT_NE(over.message().find("--max_assembling_bytes_per_client"), std::string::npos);
  // ... and the rest of the store's room is still there for others.
  PutSession next(store_.get(), {.budget = &budget, .client = "other"});
  v1::PutBlocksRequest hb;
  *hb.add_headers() = Header(0, b);
  ASSERT_TRUE(next.Apply(hb).ok());
  ASSERT_TRUE(SendLayers(next, 0, b).ok());
  EXPECT_TRUE(Visible(b));
  (void)c;
}

TEST_F(PutSessionTest, BlocksPerStreamAreBounded) {
  PutSession session(store_.get(), {.max_blocks = 3});
  v1::PutBlocksRequest r;
  for (int i = 0; i < 4; ++i) *r.add_headers() = Header(i, MakeTestBlock(i));
  const absl::Status s = session.Apply(r);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("at most 3 blocks"), std::string::npos) << s;
}

// Issue 14: a chunk after a block committed ends the stream with
// INVALID_ARGUMENT whose message says the block stays stored.
TEST_F(PutSessionTest, ChunkAfterACommittedBlockSaysWhatStays) {
  PutSession session(store_.get(), {});
  const TestBlock a = MakeTestBlock(1);
  v1::PutBlocksRequest h;
  *h.add_headers() = Header(0, a);
  ASSERT_TRUE(session.Apply(h).ok());
  ASSERT_TRUE(SendLayers(session, 0, a).ok());
  EXPECT_TRUE(Visible(a));
  EXPECT_EQ(session.committed(), 1);
  v1::PutBlocksRequest extra;
  AddLayer(extra, 0, a, 0);
  const absl::Status s = session.Apply(extra);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("after it was complete and committed"), std::string::npos)
      << s;
  EXPECT_NE(s.message().find("committed 1 block(s) before the error; they stay stored"),
            std::string::npos)
      << s;
  // A seal after commit says the same; an unknown id says it is unknown.
  v1::PutBlocksRequest seal;
  seal.add_seals()->set_block_id(0);
  EXPECT_NE(session.Apply(seal).message().find("after it was complete"),
            std::string::npos);
  v1::PutBlocksRequest unknown;
  AddLayer(unknown, 7, a, 0);
  EXPECT_NE(session.Apply(unknown).message().find("not announced"), std::string::npos);
}

TEST_F(PutSessionTest, BlockThatCannotFitIsRefusedAtItsHeader) {
  auto small = kvstore::KvStore::Open({.capacity_bytes = 100});
  ASSERT_TRUE(small.ok());
  PutSession session(small->get(), {});
  v1::PutBlocksRequest r;
  *r.add_headers() = Header(0, MakeTestBlock(1));
  EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ((*small)->Stats().rejected_puts, 1u);
}

}  // namespace
}  // namespace kvq::store

#include "services/store/put_session.h"

#include <memory>

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
    const size_t lb = b.meta.layer_bytes();
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
    h.mutable_meta()->set_format_version(7);
    *r.add_headers() = h;
    EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
  }
  {
    PutSession session(store_.get(), {});
    v1::PutBlocksRequest r;
    v1::BlockHeader h = Header(0, a);
    h.mutable_meta()->set_bits(70000);  // overflows u16
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

TEST_F(PutSessionTest, PendingBytesAreBounded) {
  const TestBlock a = MakeTestBlock(1), b = MakeTestBlock(2);
  PutSession session(store_.get(), {.max_pending_bytes = a.bytes.size() + 10});
  v1::PutBlocksRequest r;
  *r.add_headers() = Header(0, a);
  *r.add_headers() = Header(1, b);
  EXPECT_EQ(session.Apply(r).code(), absl::StatusCode::kInvalidArgument);
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

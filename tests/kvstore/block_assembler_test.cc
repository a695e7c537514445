#include "kvstore/block_assembler.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/kvstore/test_blocks.h"

namespace kvq::kvstore {
namespace {

using testing::MakeTestBlock;
using testing::TestBlock;

TEST(BlockAssemblerTest, LayersInAnyOrderChunksInOrder) {
  const TestBlock b = MakeTestBlock(1);
  auto a = BlockAssembler::Create(b.meta);
  ASSERT_TRUE(a.ok()) << a.status();
  const size_t lb = b.meta.layer_bytes(0);
  for (int layer : {3, 0, 4, 2, 1}) {
    EXPECT_FALSE(a->complete());
    const std::string part = b.bytes.substr(layer * lb, lb);
    ASSERT_TRUE(a->AddChunk(layer, 0, part.substr(0, 100)).ok());
    ASSERT_TRUE(a->AddChunk(layer, 100, part.substr(100)).ok());
  }
  ASSERT_TRUE(a->complete());
  EXPECT_EQ(a->received_bytes(), b.bytes.size());
  EXPECT_EQ(std::move(*a).TakeBytes(), b.bytes);
}

// Edge layers (format 2): layer parts differ in size; chunks land at each
// layer's own offset and the checksum still matches, whatever the order.
TEST(BlockAssemblerTest, LayersOfDifferentSizes) {
  kernels::BlockEncoding enc =
      kernels::BlockEncoding::Mixed(2, 2, 32, 8, 5, 5, kernels::ScaleFormat::kU8);
  enc.edge_layers = 1;
  enc.edge_bits = 8;
  const TestBlock b = MakeTestBlock(5, enc);
  ASSERT_NE(b.meta.layer_bytes(0), b.meta.layer_bytes(1));
  for (const std::vector<int>& order :
       std::vector<std::vector<int>>{{0, 1, 2, 3, 4}, {4, 2, 0, 3, 1}}) {
    auto a = BlockAssembler::Create(b.meta);
    ASSERT_TRUE(a.ok()) << a.status();
    for (int layer : order) {
      const std::string part =
          b.bytes.substr(b.meta.layer_offset(layer), b.meta.layer_bytes(layer));
      ASSERT_TRUE(a->AddChunk(layer, 0, part.substr(0, 50)).ok());
      ASSERT_TRUE(a->AddChunk(layer, 50, part.substr(50)).ok());
      // One byte more than the layer holds is refused.
      EXPECT_FALSE(a->AddChunk(layer, part.size(), "x").ok());
    }
    ASSERT_TRUE(a->complete());
    EXPECT_EQ(a->Checksum(), b.meta.checksum);
    EXPECT_EQ(std::move(*a).TakeBytes(), b.bytes);
  }
}

// The checksum hashed while chunks arrive equals BlockChecksum of the bytes,
// whatever the order (in order, layers out of order, a short chunk).
TEST(BlockAssemblerTest, ChecksumMatchesWhateverTheArrivalOrder) {
  const TestBlock b = MakeTestBlock(4);
  const size_t lb = b.meta.layer_bytes(0);
  for (const std::vector<int>& order : std::vector<std::vector<int>>{
           {0, 1, 2, 3, 4}, {3, 0, 4, 2, 1}, {4, 3, 2, 1, 0}, {1, 0, 2, 4, 3}}) {
    auto a = BlockAssembler::Create(b.meta);
    ASSERT_TRUE(a.ok());
    for (int layer : order) {
      const std::string part = b.bytes.substr(layer * lb, lb);
      ASSERT_TRUE(a->AddChunk(layer, 0, part.substr(0, 7)).ok());
      ASSERT_TRUE(a->AddChunk(layer, 7, part.substr(7, 200)).ok());
      ASSERT_TRUE(a->AddChunk(layer, 207, part.substr(207)).ok());
    }
    ASSERT_TRUE(a->complete());
    EXPECT_EQ(a->Checksum(), BlockChecksum(b.bytes)) << order[0] << order[1];
    EXPECT_EQ(a->Checksum(), b.meta.checksum);
  }
}

// Chunks delivered in pieces (as receive buffers hold them): appended when they
// continue the bytes so far, written in place otherwise; a chunk whose pieces
// fall short counts for nothing and the same chunk can come again.
TEST(BlockAssemblerTest, ChunksInPiecesAppendOrFillInPlace) {
  const TestBlock b = MakeTestBlock(5);
  const size_t lb = b.meta.layer_bytes(0);
  auto in_pieces = [](absl::string_view data, size_t piece, size_t deliver) {
    return [=](BlockAssembler::PieceFn fn) {
      for (size_t off = 0; off < deliver; off += piece) {
        fn(data.substr(off, std::min(piece, deliver - off)));
      }
      return true;
    };
  };
  for (const std::vector<int>& order :
       std::vector<std::vector<int>>{{0, 1, 2, 3, 4}, {2, 0, 4, 1, 3}}) {
    auto a = BlockAssembler::Create(b.meta);
    ASSERT_TRUE(a.ok());
    for (int layer : order) {
      const absl::string_view part = absl::string_view(b.bytes).substr(layer * lb, lb);
      // Short by one byte: rejected, nothing received.
      EXPECT_EQ(a->AddChunk(layer, 0, 300, in_pieces(part, 64, 299)).code(),
                absl::StatusCode::kInvalidArgument);
      // One byte too many: rejected as well.
      EXPECT_EQ(a->AddChunk(layer, 0, 300, in_pieces(part, 64, 301)).code(),
                absl::StatusCode::kInvalidArgument);
      ASSERT_TRUE(a->AddChunk(layer, 0, 300, in_pieces(part, 64, 300)).ok());
      ASSERT_TRUE(
          a->AddChunk(layer, 300, lb - 300, in_pieces(part.substr(300), 1000, lb - 300))
              .ok());
    }
    ASSERT_TRUE(a->complete());
    EXPECT_EQ(a->received_bytes(), b.bytes.size());
    EXPECT_EQ(a->Checksum(), b.meta.checksum);
    EXPECT_EQ(std::move(*a).TakeBytes(), b.bytes);
  }
}

// A read that keeps delivering past its chunk's size is rejected without
// writing past the chunk: the layer after it, already received, is intact,
// and the checksum hashed so far is unchanged.
TEST(BlockAssemblerTest, OverlongReadWritesNothingPastItsChunk) {
  const TestBlock b = MakeTestBlock(6);
  const size_t lb = b.meta.layer_bytes(0);
  auto a = BlockAssembler::Create(b.meta);
  ASSERT_TRUE(a.ok());
  const absl::string_view bytes = b.bytes;
  ASSERT_TRUE(a->AddChunk(1, 0, bytes.substr(lb, lb)).ok());
  const std::string garbage(2 * lb, '!');  // would reach into layer 1
  EXPECT_EQ(a->AddChunk(0, 0, 100,
                        [&](BlockAssembler::PieceFn fn) {
                          for (size_t off = 0; off < garbage.size(); off += 50)
                            fn(absl::string_view(garbage).substr(off, 50));
                          return true;
                        })
                .code(),
            absl::StatusCode::kInvalidArgument);
  for (int layer = 0; layer < b.meta.n_layers; ++layer) {
    if (layer != 1) {
      ASSERT_TRUE(a->AddChunk(layer, 0, bytes.substr(layer * lb, lb)).ok());
    }
  }
  ASSERT_TRUE(a->complete());
  EXPECT_EQ(a->Checksum(), b.meta.checksum);
  EXPECT_EQ(std::move(*a).TakeBytes(), b.bytes);
}

TEST(BlockAssemblerTest, IncompleteBlockGivesNoBytes) {
  const TestBlock b = MakeTestBlock(7);
  auto a = BlockAssembler::Create(b.meta);
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->AddChunk(0, 0, absl::string_view(b.bytes).substr(0, 10)).ok());
  EXPECT_EQ(std::move(*a).TakeBytes(), "");
}

TEST(BlockAssemblerTest, RejectsBadChunks) {
  const TestBlock b = MakeTestBlock(2);
  auto a = BlockAssembler::Create(b.meta);
  ASSERT_TRUE(a.ok());
  const size_t lb = b.meta.layer_bytes(0);
  EXPECT_EQ(a->AddChunk(5, 0, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->AddChunk(-1, 0, "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->AddChunk(0, 1, "x").code(), absl::StatusCode::kInvalidArgument);  // gap
  EXPECT_EQ(a->AddChunk(0, 0, std::string(lb + 1, 'x')).code(),
            absl::StatusCode::kInvalidArgument);  // past the part
  ASSERT_TRUE(a->AddChunk(0, 0, std::string(10, 'x')).ok());
  EXPECT_EQ(a->AddChunk(0, 0, "x").code(), absl::StatusCode::kInvalidArgument);  // repeat
  EXPECT_FALSE(a->complete());
}

TEST(BlockAssemblerTest, RejectsBadMeta) {
  TestBlock b = MakeTestBlock(3);
  b.meta.encoding.version = 99;
  EXPECT_EQ(BlockAssembler::Create(b.meta).status().code(),
            absl::StatusCode::kInvalidArgument);
  b = MakeTestBlock(3);
  b.meta.token_count = 33;
  EXPECT_EQ(BlockAssembler::Create(b.meta).status().code(),
            absl::StatusCode::kInvalidArgument);
  b = MakeTestBlock(3);
  b.meta.n_layers = 0;
  EXPECT_EQ(BlockAssembler::Create(b.meta).status().code(),
            absl::StatusCode::kInvalidArgument);
  b = MakeTestBlock(3);
  b.meta.encoding.group = 3;  // does not divide head_dim 8
  EXPECT_EQ(BlockAssembler::Create(b.meta).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvq::kvstore

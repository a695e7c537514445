#include "kvstore/block_assembler.h"

#include <string>

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
  const size_t lb = b.meta.layer_bytes();
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

TEST(BlockAssemblerTest, RejectsBadChunks) {
  const TestBlock b = MakeTestBlock(2);
  auto a = BlockAssembler::Create(b.meta);
  ASSERT_TRUE(a.ok());
  const size_t lb = b.meta.layer_bytes();
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

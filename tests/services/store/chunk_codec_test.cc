// chunk_encoder.h writes what the generated classes parse, chunk_decoder.h
// reads what the generated classes write, and both agree with each other,
// including across buffer boundaries; malformed input is INVALID_ARGUMENT.
#include <memory>
#include <string>
#include <vector>

#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "gtest/gtest.h"
#include "proto/kvstore.pb.h"
#include "services/store/chunk_decoder.h"
#include "services/store/chunk_encoder.h"

namespace kvq::store {
namespace {

struct Decoded {
  ChunkHeader header;
  std::string data;
};

// Copies every chunk into a string.
class CollectingSink final : public ChunkSink {
 public:
  absl::Status OnChunk(const ChunkHeader& chunk, ChunkData& data) override {
    Decoded d{chunk, std::string(chunk.size, '\0')};
    if (!data.CopyTo(d.data.data())) return absl::InvalidArgumentError("short");
    chunks.push_back(std::move(d));
    return absl::OkStatus();
  }
  std::vector<Decoded> chunks;
};

std::string Bytes(grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(buffer.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

v1::PutBlocksRequest SampleRequest() {
  v1::PutBlocksRequest r;
  v1::BlockHeader* h = r.add_headers();
  h->set_block_id(7);
  h->set_key(std::string(16, 'k'));
  h->mutable_meta()->set_n_layers(2);
  v1::BlockChunk* c = r.add_chunks();
  c->set_block_id(7);
  c->set_layer(1);
  c->set_offset(300);
  c->set_data(std::string(1000, 'x'));
  v1::BlockChunk* zero = r.add_chunks();  // all-default fields are omitted
  zero->set_data("abc");
  r.add_seals()->set_block_id(7);
  return r;
}

TEST(ChunkEncoderTest, GeneratedParserReadsWhatTheEncoderWrites) {
  auto owner = std::make_shared<const std::string>("0123456789");
  std::vector<grpc::Slice> slices;
  v1::PutBlocksRequest headers;
  headers.add_headers()->set_block_id(3);
  AppendMessage(headers, &slices);
  AppendChunk(kPutChunkField, {.block_id = 3, .layer = 2, .offset = 64},
              absl::string_view(*owner).substr(2, 5), owner, &slices);
  AppendChunk(kPutChunkField, {.block_id = 0, .layer = 0, .offset = 0}, "copied",
              /*owner=*/nullptr, &slices);
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  slices.clear();

  v1::PutBlocksRequest parsed;
  ASSERT_TRUE(parsed.ParseFromString(Bytes(buffer)));
  ASSERT_EQ(parsed.headers_size(), 1);
  EXPECT_EQ(parsed.headers(0).block_id(), 3u);
  ASSERT_EQ(parsed.chunks_size(), 2);
  EXPECT_EQ(parsed.chunks(0).block_id(), 3u);
  EXPECT_EQ(parsed.chunks(0).layer(), 2u);
  EXPECT_EQ(parsed.chunks(0).offset(), 64u);
  EXPECT_EQ(parsed.chunks(0).data(), "23456");
  EXPECT_EQ(parsed.chunks(1).data(), "copied");
}

TEST(ChunkDecoderTest, ReadsWhatTheGeneratedSerializerWritesInSmallPieces) {
  const v1::PutBlocksRequest request = SampleRequest();
  const std::string bytes = request.SerializeAsString();
  for (int piece : {1, 3, 64, static_cast<int>(bytes.size())}) {
    google::protobuf::io::ArrayInputStream in(bytes.data(),
                                              static_cast<int>(bytes.size()), piece);
    v1::PutBlocksRequest rest;
    CollectingSink sink;
    ASSERT_TRUE(DecodeChunked(&in, kPutChunkField, &rest, sink).ok()) << piece;
    EXPECT_EQ(rest.headers_size(), 1);
    EXPECT_EQ(rest.headers(0).key(), std::string(16, 'k'));
    EXPECT_EQ(rest.seals_size(), 1);
    EXPECT_EQ(rest.chunks_size(), 0);
    ASSERT_EQ(sink.chunks.size(), 2u);
    EXPECT_EQ(sink.chunks[0].header.block_id, 7u);
    EXPECT_EQ(sink.chunks[0].header.layer, 1u);
    EXPECT_EQ(sink.chunks[0].header.offset, 300u);
    EXPECT_EQ(sink.chunks[0].data, std::string(1000, 'x'));
    EXPECT_EQ(sink.chunks[1].header.block_id, 0u);
    EXPECT_EQ(sink.chunks[1].data, "abc");
  }
}

TEST(ChunkDecoderTest, DecodesTheEncoderOutputFromAByteBuffer) {
  auto owner = std::make_shared<const std::string>(100000, 'q');
  std::vector<grpc::Slice> slices;
  v1::GetBlocksResponse first;
  first.set_lease_id(99);
  first.add_missing(4);
  AppendMessage(first, &slices);
  AppendChunk(kGetChunkField, {.block_id = 1, .layer = 5, .offset = 10}, *owner, owner,
              &slices);
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  grpc::ProtoBufferReader reader(&buffer);
  v1::GetBlocksResponse rest;
  CollectingSink sink;
  ASSERT_TRUE(DecodeChunked(&reader, kGetChunkField, &rest, sink).ok());
  EXPECT_EQ(rest.lease_id(), 99u);
  ASSERT_EQ(rest.missing_size(), 1);
  ASSERT_EQ(sink.chunks.size(), 1u);
  EXPECT_EQ(sink.chunks[0].header.layer, 5u);
  EXPECT_EQ(sink.chunks[0].data, *owner);
}

// ReadPieces hands over a chunk's bytes as the slices hold them, across slice
// boundaries, without reading past the chunk.
TEST(ChunkDecoderTest, ReadPiecesSpansSlicesAndStopsAtTheChunk) {
  auto a = std::make_shared<const std::string>(70000, 'a');
  auto b = std::make_shared<const std::string>(5000, 'b');
  std::vector<grpc::Slice> slices;
  AppendChunk(kGetChunkField, {.block_id = 1}, *a, a, &slices);
  AppendChunk(kGetChunkField, {.block_id = 2}, *b, /*owner=*/nullptr, &slices);
  ASSERT_GE(slices.size(), 3u);  // header + a's bytes + b (copied into its header)
  grpc::ByteBuffer buffer(slices.data(), slices.size());
  grpc::ProtoBufferReader reader(&buffer);
  struct PieceSink final : public ChunkSink {
    absl::Status OnChunk(const ChunkHeader& chunk, ChunkData& data) override {
      std::string got;
      int n = 0;
      if (!data.ReadPieces([&](absl::string_view p) {
            got.append(p.data(), p.size());
            ++n;
          })) {
        return absl::InvalidArgumentError("short");
      }
      pieces.push_back(n);
      chunks.push_back(std::move(got));
      EXPECT_EQ(chunks.back().size(), chunk.size);
      return absl::OkStatus();
    }
    std::vector<std::string> chunks;
    std::vector<int> pieces;
  } sink;
  v1::GetBlocksResponse rest;
  ASSERT_TRUE(DecodeChunked(&reader, kGetChunkField, &rest, sink).ok());
  ASSERT_EQ(sink.chunks.size(), 2u);
  EXPECT_EQ(sink.chunks[0], *a);
  EXPECT_EQ(sink.chunks[1], *b);
  EXPECT_GE(sink.pieces[0], 1);
}

absl::Status DecodeString(const std::string& bytes) {
  google::protobuf::io::ArrayInputStream in(bytes.data(), static_cast<int>(bytes.size()));
  v1::PutBlocksRequest rest;
  CollectingSink sink;
  return DecodeChunked(&in, kPutChunkField, &rest, sink);
}

TEST(ChunkDecoderTest, MalformedInputIsInvalidArgument) {
  const std::string good = SampleRequest().SerializeAsString();
  // Truncated anywhere inside the first chunk.
  const size_t chunk_start = good.find(std::string(1000, 'x'));
  ASSERT_NE(chunk_start, std::string::npos);
  EXPECT_EQ(DecodeString(good.substr(0, chunk_start + 10)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeString(good.substr(0, chunk_start - 2)).code(),
            absl::StatusCode::kInvalidArgument);
  // A chunk whose layer comes after its data.
  std::string late;
  late += '\x12';  // field 2, length-delimited
  late += '\x07';
  late +=
      "\x22\x03"
      "abc";           // data
  late += "\x10\x01";  // layer
  EXPECT_EQ(DecodeString(late).code(), absl::StatusCode::kInvalidArgument);
  // Tag 0.
  EXPECT_EQ(DecodeString(std::string("\x00\x01", 2)).code(),
            absl::StatusCode::kInvalidArgument);
  // An empty message is fine.
  EXPECT_TRUE(DecodeString("").ok());
}

}  // namespace
}  // namespace kvq::store

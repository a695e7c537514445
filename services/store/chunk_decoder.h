// Decoding of the messages that carry block bytes, PutBlocksRequest (chunks
// are field 2) and GetBlocksResponse (field 4), without a copy into a parsed
// message: each chunk's data is copied once, straight from the receive
// buffers into the block being assembled, instead of into a std::string of a
// parsed message and from there into the block. Any standard encoding
// decodes (chunk_encoder.h writes one without copying the data). Depends on
// protobuf only.
//
//   grpc::ProtoBufferReader reader(&received);  // a ZeroCopyInputStream
//   v1::PutBlocksRequest rest;  // gets every field but the chunks
//   KVQ_RETURN_IF_ERROR(DecodeChunked(&reader, kPutChunkField, &rest, sink));
#ifndef KVQ_SERVICES_STORE_CHUNK_DECODER_H_
#define KVQ_SERVICES_STORE_CHUNK_DECODER_H_

#include <cstdint>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/io/zero_copy_stream.h"
#include "google/protobuf/message_lite.h"

namespace kvq::store {

// Field numbers of the repeated BlockChunk fields (proto/kvstore.proto).
inline constexpr int kPutChunkField = 2;  // PutBlocksRequest.chunks
inline constexpr int kGetChunkField = 4;  // GetBlocksResponse.chunks
// BlockChunk's own fields; the encoder writes data last, the decoder needs it so.
inline constexpr int kChunkBlockIdField = 1;
inline constexpr int kChunkLayerField = 2;
inline constexpr int kChunkOffsetField = 3;
inline constexpr int kChunkDataField = 4;

// A BlockChunk's fields other than its data, and the data's size.
struct ChunkHeader {
  uint32_t block_id = 0;
  uint32_t layer = 0;
  uint64_t offset = 0;
  uint32_t size = 0;
};

// The data of the chunk being decoded, still in the receive buffers.
class ChunkData {
 public:
  virtual ~ChunkData() = default;
  // Copies the chunk's `size` bytes to `dst`. False if the message ends early.
  // Call at most one of CopyTo and ReadPieces, at most once.
  virtual bool CopyTo(char* dst) = 0;
  // Passes the chunk's bytes to `piece` as the receive buffers hold them, in
  // order and without a copy (a sink can append them to a block instead of
  // zero-filling room for them first). False if the message ends early.
  virtual bool ReadPieces(absl::FunctionRef<void(absl::string_view)> piece) = 0;
};

// Receives the chunks DecodeChunked finds, in wire order.
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  // One chunk. Every field before it in the message has been merged into the
  // decoder's `rest` by now. Data the sink does not copy is skipped. An error
  // stops decoding and is returned as it is.
  virtual absl::Status OnChunk(const ChunkHeader& chunk, ChunkData& data) = 0;
};

// Decodes one message of `rest`'s type from `in`: each `chunk_field` entry goes
// to `sink`, every other field is merged into `rest` as it comes (`rest` should
// be empty). INVALID_ARGUMENT for malformed wire data, a chunk whose data is
// followed by more chunk fields or repeated (standard encoders write fields in
// number order, data last); errors from `sink` are returned as they are.
absl::Status DecodeChunked(google::protobuf::io::ZeroCopyInputStream* in, int chunk_field,
                           google::protobuf::MessageLite* rest, ChunkSink& sink);

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_CHUNK_DECODER_H_

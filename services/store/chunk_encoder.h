// Encoding of the messages that carry block bytes (PutBlocksRequest,
// GetBlocksResponse) as gRPC slices without copying the chunk data: a chunk
// becomes a small slice with its field tag, lengths, block id, layer and
// offset, then the data itself, sent from the caller's buffer (kept alive by a
// shared_ptr). The bytes are ordinary protobuf encoding (chunk_decoder.h or
// the generated classes decode them).
//
//   std::vector<grpc::Slice> slices;
//   AppendMessage(headers_only_request, &slices);
//   AppendChunk(kPutChunkField, {.block_id = 0, .layer = 3}, data, owner, &slices);
//   grpc::ByteBuffer message(slices.data(), slices.size());
#ifndef KVQ_SERVICES_STORE_CHUNK_ENCODER_H_
#define KVQ_SERVICES_STORE_CHUNK_ENCODER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/support/slice.h"
#include "services/store/chunk_decoder.h"

namespace kvq::store {

// Appends `message` serialized (its fields, no chunks) as one slice.
void AppendMessage(const google::protobuf::MessageLite& message,
                   std::vector<grpc::Slice>* out);

// Appends one `chunk_field` entry with `chunk`'s block id, layer and offset
// (its size is data.size()): a header slice, then `data` without copying it.
// `owner` keeps `data` alive until gRPC releases the slice; a null owner
// copies `data` into the slice instead.
void AppendChunk(int chunk_field, const ChunkHeader& chunk, absl::string_view data,
                 const std::shared_ptr<const std::string>& owner,
                 std::vector<grpc::Slice>* out);

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_CHUNK_ENCODER_H_

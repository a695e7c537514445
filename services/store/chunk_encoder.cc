#include "services/store/chunk_encoder.h"

#include <cstring>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/wire_format_lite.h"

namespace kvq::store {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedOutputStream;

uint8_t* WriteTagAndVarint(int field, uint64_t value, uint8_t* p) {
  p = CodedOutputStream::WriteTagToArray(
      WireFormatLite::MakeTag(field, WireFormatLite::WIRETYPE_VARINT), p);
  return CodedOutputStream::WriteVarint64ToArray(value, p);
}

void DeleteOwner(void* owner) {
  delete static_cast<std::shared_ptr<const std::string>*>(owner);
}

}  // namespace

void AppendMessage(const google::protobuf::MessageLite& message,
                   std::vector<grpc::Slice>* out) {
  const size_t size = message.ByteSizeLong();
  if (size == 0) return;
  grpc::Slice slice(size);
  message.SerializeWithCachedSizesToArray(const_cast<uint8_t*>(slice.begin()));
  out->push_back(std::move(slice));
}

void AppendChunk(int chunk_field, const ChunkHeader& chunk, absl::string_view data,
                 const std::shared_ptr<const std::string>& owner,
                 std::vector<grpc::Slice>* out) {
  // The chunk's fields before its data; then the entry's tag and length.
  uint8_t fields[40];
  uint8_t* p = fields;
  p = WriteTagAndVarint(kChunkBlockIdField, chunk.block_id, p);
  p = WriteTagAndVarint(kChunkLayerField, chunk.layer, p);
  p = WriteTagAndVarint(kChunkOffsetField, chunk.offset, p);
  p = CodedOutputStream::WriteTagToArray(
      WireFormatLite::MakeTag(kChunkDataField, WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
      p);
  p = CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(data.size()), p);
  const size_t fields_size = static_cast<size_t>(p - fields);

  uint8_t head[16];
  uint8_t* h = CodedOutputStream::WriteTagToArray(
      WireFormatLite::MakeTag(chunk_field, WireFormatLite::WIRETYPE_LENGTH_DELIMITED),
      head);
  h = CodedOutputStream::WriteVarint32ToArray(
      static_cast<uint32_t>(fields_size + data.size()), h);
  const size_t head_size = static_cast<size_t>(h - head);

  const bool copy = owner == nullptr;
  grpc::Slice prefix(head_size + fields_size + (copy ? data.size() : 0));
  uint8_t* dst = const_cast<uint8_t*>(prefix.begin());
  std::memcpy(dst, head, head_size);
  std::memcpy(dst + head_size, fields, fields_size);
  if (copy && !data.empty()) {
    std::memcpy(dst + head_size + fields_size, data.data(), data.size());
  }
  out->push_back(std::move(prefix));
  if (copy || data.empty()) return;
  out->emplace_back(const_cast<char*>(data.data()), data.size(), &DeleteOwner,
                    new std::shared_ptr<const std::string>(owner));
}

}  // namespace kvq::store

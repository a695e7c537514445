#include "services/store/chunk_decoder.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"

namespace kvq::store {
namespace {

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

absl::Status Malformed(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("malformed message: ", what));
}

class StreamChunkData final : public ChunkData {
 public:
  StreamChunkData(CodedInputStream& in, uint32_t size) : in_(in), size_(size) {}

  bool CopyTo(char* dst) override {
    if (used_) return false;
    used_ = true;
    return size_ == 0 || in_.ReadRaw(dst, static_cast<int>(size_));
  }
  bool ReadPieces(absl::FunctionRef<void(absl::string_view)> piece) override {
    if (used_) return false;
    used_ = true;
    for (uint32_t left = size_; left > 0;) {
      const void* data = nullptr;
      int available = 0;
      if (!in_.GetDirectBufferPointer(&data, &available) || available <= 0) return false;
      const int n = static_cast<int>(std::min<uint32_t>(left, available));
      piece(absl::string_view(static_cast<const char*>(data), n));
      if (!in_.Skip(n)) return false;  // within the buffer just seen
      left -= n;
    }
    return true;
  }
  // Skips the data if the sink did not copy it.
  bool Finish() { return used_ || in_.Skip(static_cast<int>(size_)); }

 private:
  CodedInputStream& in_;
  const uint32_t size_;
  bool used_ = false;
};

// Decodes one BlockChunk; `in` is limited to it.
absl::Status DecodeChunk(CodedInputStream& in, ChunkSink& sink) {
  ChunkHeader chunk;
  bool have_data = false;
  while (true) {
    const uint32_t tag = in.ReadTag();
    if (tag == 0) {
      if (in.BytesUntilLimit() != 0) return Malformed("bad tag in a BlockChunk");
      break;
    }
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const WireFormatLite::WireType type = WireFormatLite::GetTagWireType(tag);
    const bool varint = type == WireFormatLite::WIRETYPE_VARINT;
    const bool known =
        (number >= kChunkBlockIdField && number <= kChunkOffsetField && varint) ||
        (number == kChunkDataField && type == WireFormatLite::WIRETYPE_LENGTH_DELIMITED);
    if (!known) {
      if (!WireFormatLite::SkipField(&in, tag)) return Malformed("truncated BlockChunk");
      continue;
    }
    if (have_data) {
      return Malformed(
          absl::StrCat("BlockChunk field ", number, " after its data (write data last)"));
    }
    bool ok = true;
    if (number == kChunkBlockIdField) {
      ok = in.ReadVarint32(&chunk.block_id);
    } else if (number == kChunkLayerField) {
      ok = in.ReadVarint32(&chunk.layer);
    } else if (number == kChunkOffsetField) {
      ok = in.ReadVarint64(&chunk.offset);
    } else {
      ok = in.ReadVarint32(&chunk.size) &&
           chunk.size <= static_cast<uint32_t>(std::max(in.BytesUntilLimit(), 0));
      if (ok) {
        StreamChunkData data(in, chunk.size);
        KVQ_RETURN_IF_ERROR(sink.OnChunk(chunk, data));
        ok = data.Finish();
      }
      have_data = true;
    }
    if (!ok) return Malformed("truncated BlockChunk");
  }
  if (!have_data) {
    // No data field: an empty chunk, as a parsed message would have.
    StreamChunkData data(in, 0);
    KVQ_RETURN_IF_ERROR(sink.OnChunk(chunk, data));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DecodeChunked(google::protobuf::io::ZeroCopyInputStream* in, int chunk_field,
                           google::protobuf::MessageLite* rest, ChunkSink& sink) {
  CodedInputStream coded(in);
  std::string field;
  while (true) {
    const uint32_t tag = coded.ReadTag();
    if (tag == 0) {
      if (!coded.ConsumedEntireMessage()) return Malformed("bad tag");
      return absl::OkStatus();
    }
    if (WireFormatLite::GetTagFieldNumber(tag) == chunk_field &&
        WireFormatLite::GetTagWireType(tag) ==
            WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t length = 0;
      if (!coded.ReadVarint32(&length) || length > INT_MAX) {
        return Malformed("bad BlockChunk length");
      }
      const CodedInputStream::Limit limit = coded.PushLimit(static_cast<int>(length));
      KVQ_RETURN_IF_ERROR(DecodeChunk(coded, sink));
      coded.PopLimit(limit);
      continue;
    }
    // Any other field: merged into `rest` as the generated parser would.
    field.clear();
    {
      google::protobuf::io::StringOutputStream out(&field);
      CodedOutputStream coded_out(&out);
      if (!WireFormatLite::SkipField(&coded, tag, &coded_out)) {
        return Malformed("truncated field");
      }
    }
    if (!rest->MergeFromString(field)) return Malformed("bad field");
  }
}

}  // namespace kvq::store

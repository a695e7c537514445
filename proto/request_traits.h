// gRPC's (de)serialization of kvq's request messages, included first by the
// generated serving.grpc.pb.h (tools/proto.bzl `prelude`), so that every
// translation unit sees it. gRPC's generic protobuf traits answer a request
// whose bytes do not parse (garbage, or a string field that is not valid
// UTF-8) with INTERNAL and no message, before any handler runs; these answer
// INVALID_ARGUMENT naming the message. Serialization is gRPC's own.
#ifndef KVQ_PROTO_REQUEST_TRAITS_H_
#define KVQ_PROTO_REQUEST_TRAITS_H_

#include <string>

#include "grpcpp/impl/codegen/proto_buffer_reader.h"
#include "grpcpp/impl/codegen/proto_buffer_writer.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "proto/serving.pb.h"

namespace kvq::v1::proto_internal {

template <class T>
class RequestTraits {
 public:
  static grpc::Status Serialize(const grpc::protobuf::MessageLite& msg,
                                grpc::ByteBuffer* bb, bool* own_buffer) {
    return grpc::GenericSerialize<grpc::ProtoBufferWriter, T>(msg, bb, own_buffer);
  }
  static grpc::Status Deserialize(grpc::ByteBuffer* buffer,
                                  grpc::protobuf::MessageLite* msg) {
    grpc::Status s = grpc::GenericDeserialize<grpc::ProtoBufferReader, T>(buffer, msg);
    if (s.ok() || s.error_code() != grpc::StatusCode::INTERNAL || buffer == nullptr) {
      return s;
    }
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the request is not a valid " + T().GetTypeName() +
                            ": its bytes do not parse (malformed, or a string "
                            "field that is not valid UTF-8)");
  }
};

}  // namespace kvq::v1::proto_internal

namespace grpc {

template <>
class SerializationTraits<kvq::v1::GenerateRequest, void>
    : public kvq::v1::proto_internal::RequestTraits<kvq::v1::GenerateRequest> {};
template <>
class SerializationTraits<kvq::v1::PrefillRequest, void>
    : public kvq::v1::proto_internal::RequestTraits<kvq::v1::PrefillRequest> {};
template <>
class SerializationTraits<kvq::v1::DecodeRequest, void>
    : public kvq::v1::proto_internal::RequestTraits<kvq::v1::DecodeRequest> {};
template <>
class SerializationTraits<kvq::v1::StatsRequest, void>
    : public kvq::v1::proto_internal::RequestTraits<kvq::v1::StatsRequest> {};

}  // namespace grpc

#endif  // KVQ_PROTO_REQUEST_TRAITS_H_

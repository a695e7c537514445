// Conversions between the KvStore wire messages (proto/kvstore.proto) and the
// engine's domain types (kvstore/block.h). Everything from the wire is
// validated here: a message that converts is safe to hand to the engine.
//
//   KVQ_ASSIGN_OR_RETURN(kvstore::BlockKey key, KeyFromProto(header.key()));
//   KVQ_ASSIGN_OR_RETURN(kvstore::BlockMeta meta, MetaFromProto(header.meta()));
#ifndef KVQ_SERVICES_STORE_PROTO_CONVERT_H_
#define KVQ_SERVICES_STORE_PROTO_CONVERT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "google/protobuf/repeated_field.h"
#include "kvstore/block.h"
#include "kvstore/block_key.h"
#include "kvstore/kv_store.h"
#include "proto/kvstore.pb.h"

namespace kvq::store {

// INVALID_ARGUMENT unless `bytes` is a 16-byte key.
absl::StatusOr<kvstore::BlockKey> KeyFromProto(const std::string& bytes);
// All keys, or the first one's error (naming its index).
absl::StatusOr<std::vector<kvstore::BlockKey>> KeysFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& keys);

// INVALID_ARGUMENT for fields that overflow their domain type or fail
// kvstore::ValidateMeta (unknown version, bad encoding, shape, token count).
absl::StatusOr<kvstore::BlockMeta> MetaFromProto(const v1::BlockMeta& proto);
v1::BlockMeta MetaToProto(const kvstore::BlockMeta& meta);

kvstore::StoreStats StatsFromProto(const v1::StoreStatsResponse& proto);
v1::StoreStatsResponse StatsToProto(const kvstore::StoreStats& stats);

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_PROTO_CONVERT_H_

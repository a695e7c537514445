#include "services/store/proto_convert.h"

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/common/common_proto.h"

namespace kvq::store {
namespace {

absl::Status CheckFits31(uint32_t v, const char* field) {
  if (v > static_cast<uint32_t>(std::numeric_limits<int32_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("block meta ", field, " = ", v, " is out of range"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<kvstore::BlockKey> KeyFromProto(const std::string& bytes) {
  return kvstore::BlockKey::FromBytes(bytes);
}

absl::StatusOr<std::vector<kvstore::BlockKey>> KeysFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& keys) {
  std::vector<kvstore::BlockKey> out;
  out.reserve(keys.size());
  for (int i = 0; i < keys.size(); ++i) {
    absl::StatusOr<kvstore::BlockKey> key = KeyFromProto(keys[i]);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("key ", i, ": ", key.status().message()));
    }
    out.push_back(*key);
  }
  return out;
}

absl::StatusOr<kvstore::BlockMeta> MetaFromProto(const v1::BlockMeta& proto) {
  KVQ_RETURN_IF_ERROR(CheckFits31(proto.n_layers(), "n_layers"));
  KVQ_RETURN_IF_ERROR(CheckFits31(proto.n_kv_heads(), "n_kv_heads"));
  KVQ_RETURN_IF_ERROR(CheckFits31(proto.head_dim(), "head_dim"));
  KVQ_RETURN_IF_ERROR(CheckFits31(proto.token_count(), "token_count"));
  kvstore::BlockMeta meta;
  KVQ_ASSIGN_OR_RETURN(meta.encoding,
                       services::EncodingFromProto(proto.encoding(), "encoding"));
  meta.model_id = proto.model().fingerprint();
  meta.n_layers = static_cast<int32_t>(proto.n_layers());
  meta.n_kv_heads = static_cast<int32_t>(proto.n_kv_heads());
  meta.head_dim = static_cast<int32_t>(proto.head_dim());
  meta.token_count = static_cast<int32_t>(proto.token_count());
  meta.checksum = proto.checksum();
  KVQ_RETURN_IF_ERROR(kvstore::ValidateMeta(meta));
  return meta;
}

v1::BlockMeta MetaToProto(const kvstore::BlockMeta& meta) {
  v1::BlockMeta p;
  services::EncodingToProto(meta.encoding, p.mutable_encoding());
  p.mutable_model()->set_fingerprint(meta.model_id);
  p.set_n_layers(meta.n_layers);
  p.set_n_kv_heads(meta.n_kv_heads);
  p.set_head_dim(meta.head_dim);
  p.set_token_count(meta.token_count);
  p.set_checksum(meta.checksum);
  return p;
}

kvstore::StoreStats StatsFromProto(const v1::StoreStatsResponse& p) {
  kvstore::StoreStats s;
  s.capacity_bytes = p.capacity_bytes();
  s.bytes = p.bytes();
  s.blocks = p.blocks();
  s.leased_blocks = p.leased_blocks();
  s.leased_bytes = p.leased_bytes();
  s.active_leases = p.active_leases();
  s.puts = p.puts();
  s.duplicate_puts = p.duplicate_puts();
  s.rejected_puts = p.rejected_puts();
  s.hits = p.hits();
  s.misses = p.misses();
  s.evictions = p.evictions();
  s.expired_leases = p.expired_leases();
  return s;
}

v1::StoreStatsResponse StatsToProto(const kvstore::StoreStats& s) {
  v1::StoreStatsResponse p;
  p.set_capacity_bytes(s.capacity_bytes);
  p.set_bytes(s.bytes);
  p.set_blocks(s.blocks);
  p.set_leased_blocks(s.leased_blocks);
  p.set_leased_bytes(s.leased_bytes);
  p.set_active_leases(s.active_leases);
  p.set_puts(s.puts);
  p.set_duplicate_puts(s.duplicate_puts);
  p.set_rejected_puts(s.rejected_puts);
  p.set_hits(s.hits);
  p.set_misses(s.misses);
  p.set_evictions(s.evictions);
  p.set_expired_leases(s.expired_leases);
  return p;
}

}  // namespace kvq::store

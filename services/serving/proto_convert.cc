#include "services/serving/proto_convert.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "services/common/common_proto.h"

namespace kvq::serving {
namespace {

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

}  // namespace

absl::StatusOr<GenerationParams> FromProto(const v1::SamplingParams& params) {
  GenerationParams g;
  g.sampling = {params.temperature(), params.top_p(), params.top_k(), params.seed()};
  if (absl::Status st = g.sampling.Validate(); !st.ok()) {
    return Invalid(absl::StrCat("sampling: ", st.message()));
  }
  if (params.max_tokens() < 1) {
    return Invalid(
        absl::StrCat("sampling.max_tokens must be >= 1, got ", params.max_tokens()));
  }
  g.max_tokens = params.max_tokens();
  g.stop_ids.assign(params.stop_token_ids().begin(), params.stop_token_ids().end());
  g.ignore_eos = params.ignore_eos();
  return g;
}

void ToProto(const GenerationParams& params, v1::SamplingParams* out) {
  out->set_temperature(params.sampling.temperature);
  out->set_top_p(params.sampling.top_p);
  out->set_top_k(params.sampling.top_k);
  out->set_seed(params.sampling.seed);
  out->set_max_tokens(params.max_tokens);
  out->mutable_stop_token_ids()->Add(params.stop_ids.begin(), params.stop_ids.end());
  out->set_ignore_eos(params.ignore_eos);
}

absl::StatusOr<KvHandle> FromProto(const v1::KvHandle& handle) {
  KvHandle h;
  h.model_id = handle.model().fingerprint();
  h.tokens.assign(handle.tokens().begin(), handle.tokens().end());
  h.kv = handle.cache().kv();
  for (int b = 0; b < handle.blocks_size(); ++b) {
    const v1::BlockRef& ref = handle.blocks(b);
    absl::StatusOr<kvstore::BlockKey> key = kvstore::BlockKey::FromBytes(ref.key());
    if (!key.ok()) {
      return Invalid(absl::StrCat("handle block ", b,
                                  "'s key does not match the prompt's block chain (a "
                                  "foreign or corrupted handle: ",
                                  key.status().message(), ")"));
    }
    KVQ_ASSIGN_OR_RETURN(
        kernels::BlockEncoding encoding,
        services::EncodingFromProto(ref.encoding(), absl::StrCat("handle block ", b)));
    h.blocks.push_back({*key, encoding, static_cast<int>(ref.tokens())});
  }
  for (const v1::StoreLease& l : handle.leases()) {
    h.leases.push_back({l.store(), l.lease_id()});
  }
  h.lease_ttl = absl::Milliseconds(handle.lease_ttl_ms());
  return h;
}

void ToProto(const KvHandle& h, v1::KvHandle* out) {
  out->mutable_model()->set_fingerprint(h.model_id);
  out->mutable_tokens()->Add(h.tokens.begin(), h.tokens.end());
  out->mutable_cache()->set_kv(h.kv);
  for (const HandleBlock& b : h.blocks) {
    v1::BlockRef* ref = out->add_blocks();
    ref->set_key(b.key.ToBytes());
    services::EncodingToProto(b.encoding, ref->mutable_encoding());
    ref->set_tokens(b.tokens);
  }
  for (const HandleLease& l : h.leases) {
    v1::StoreLease* lease = out->add_leases();
    lease->set_store(l.store);
    lease->set_lease_id(l.lease_id);
  }
  if (!h.leases.empty()) {
    out->set_lease_ttl_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(h.lease_ttl)));
  }
}

absl::StatusOr<PrefillRequest> FromProto(const v1::PrefillRequest& request) {
  PrefillRequest r;
  r.tokens.assign(request.tokens().begin(), request.tokens().end());
  if (request.has_model()) r.model_id = request.model().fingerprint();
  r.kv = request.cache().kv();
  KVQ_ASSIGN_OR_RETURN(r.generation, FromProto(request.sampling()));
  return r;
}

void ToProto(const PrefillRequest& request, v1::PrefillRequest* out) {
  out->mutable_tokens()->Add(request.tokens.begin(), request.tokens.end());
  if (request.model_id) out->mutable_model()->set_fingerprint(*request.model_id);
  out->mutable_cache()->set_kv(request.kv);
  ToProto(request.generation, out->mutable_sampling());
}

void ToProto(const PrefillStats& s, v1::PrefillStats* out) {
  out->set_blocks_total(s.blocks_total);
  out->set_blocks_reused(s.blocks_reused);
  out->set_tokens_computed(s.tokens_computed);
  out->set_bytes_pushed(s.bytes_pushed);
  out->set_bytes_fetched(s.bytes_fetched);
  out->set_fp16_equivalent_bytes(s.fp16_equivalent_bytes);
  out->set_stored_bytes(s.stored_bytes);
  out->set_compute_seconds(s.compute_seconds);
  out->set_seconds(s.seconds);
  out->set_transfer_exposed_seconds(s.transfer_exposed_seconds);
  out->set_layers(s.layers);
  out->set_prefix_blocks_lost(s.prefix_blocks_lost);
  out->set_blocks_reput(s.blocks_reput);
}

PrefillStats FromProto(const v1::PrefillStats& s) {
  PrefillStats out;
  out.blocks_total = static_cast<int>(s.blocks_total());
  out.blocks_reused = static_cast<int>(s.blocks_reused());
  out.tokens_computed = s.tokens_computed();
  out.bytes_pushed = s.bytes_pushed();
  out.bytes_fetched = s.bytes_fetched();
  out.fp16_equivalent_bytes = s.fp16_equivalent_bytes();
  out.stored_bytes = s.stored_bytes();
  out.compute_seconds = s.compute_seconds();
  out.seconds = s.seconds();
  out.transfer_exposed_seconds = s.transfer_exposed_seconds();
  out.layers = static_cast<int>(s.layers());
  out.prefix_blocks_lost = static_cast<int>(s.prefix_blocks_lost());
  out.blocks_reput = static_cast<int>(s.blocks_reput());
  return out;
}

void ToProto(const PrefillResult& result, v1::PrefillResponse* out) {
  ToProto(result.handle, out->mutable_handle());
  out->set_first_token(result.first_token);
  ToProto(result.stats, out->mutable_stats());
}

absl::StatusOr<PrefillResult> FromProto(const v1::PrefillResponse& response) {
  PrefillResult r;
  KVQ_ASSIGN_OR_RETURN(r.handle, FromProto(response.handle()));
  r.first_token = response.first_token();
  r.stats = FromProto(response.stats());
  return r;
}

absl::StatusOr<DecodeRequest> FromProto(const v1::DecodeRequest& request) {
  DecodeRequest r;
  switch (request.input_case()) {
    case v1::DecodeRequest::kHandle: {
      KVQ_ASSIGN_OR_RETURN(KvHandle handle, FromProto(request.handle()));
      r.handle = std::move(handle);
      r.first_token = request.first_token();
      break;
    }
    case v1::DecodeRequest::kPrompt:
      r.prompt.assign(request.prompt().ids().begin(), request.prompt().ids().end());
      r.kv = request.cache().kv();
      break;
    default:
      return Invalid("the request has neither a handle nor a prompt");
  }
  KVQ_ASSIGN_OR_RETURN(r.generation, FromProto(request.sampling()));
  return r;
}

void ToProto(const DecodeRequest& request, v1::DecodeRequest* out) {
  if (request.handle) {
    ToProto(*request.handle, out->mutable_handle());
    out->set_first_token(request.first_token);
  } else {
    out->mutable_prompt()->mutable_ids()->Add(request.prompt.begin(),
                                              request.prompt.end());
    out->mutable_cache()->set_kv(request.kv);
  }
  ToProto(request.generation, out->mutable_sampling());
}

void ToProto(const DecodeChunk& chunk, v1::DecodeResponse* out) {
  out->mutable_tokens()->Add(chunk.tokens.begin(), chunk.tokens.end());
  if (!chunk.finished) return;
  out->set_finished(true);
  out->set_finish_reason(chunk.finish_reason);
  out->set_bytes_fetched(chunk.bytes_fetched);
  out->set_fp16_equivalent_bytes(chunk.fp16_equivalent_bytes);
  out->set_stored_bytes(chunk.stored_bytes);
}

DecodeChunk FromProto(const v1::DecodeResponse& response) {
  DecodeChunk c;
  c.tokens.assign(response.tokens().begin(), response.tokens().end());
  c.finished = response.finished();
  c.finish_reason = response.finish_reason();
  c.bytes_fetched = response.bytes_fetched();
  c.fp16_equivalent_bytes = response.fp16_equivalent_bytes();
  c.stored_bytes = response.stored_bytes();
  return c;
}

}  // namespace kvq::serving

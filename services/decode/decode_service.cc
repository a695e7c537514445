#include "services/decode/decode_service.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/block_kv_cache.h"
#include "model/kv_cache_factory.h"
#include "services/common/grpc_status.h"
#include "services/serving/grpc_server.h"
#include "services/serving/kv_plan.h"
#include "services/serving/request.h"

namespace kvq::decode {
namespace {

absl::Status Invalid(const std::string& m) { return absl::InvalidArgumentError(m); }

// The handle's leases on the shards this worker knows (a shard it does not
// know is left to its lease's TTL).
std::vector<store::ShardLease> HandleLeases(const v1::KvHandle& handle,
                                            const serving::StoreClient& store) {
  std::vector<store::ShardLease> out;
  for (const v1::StoreLease& l : handle.leases()) {
    const int shard = store.ShardIndex(l.store());
    if (shard >= 0 && l.lease_id() != 0) {
      out.push_back({static_cast<size_t>(shard), l.lease_id()});
    }
  }
  return out;
}

}  // namespace

DecodeService::DecodeService(const model::Model& model,
                             const model::Transformer& transformer,
                             serving::StoreClient* store,
                             serving::ServingMetrics* metrics,
                             const DecodeOptions& options)
    : model_(model),
      transformer_(transformer),
      store_(store),
      metrics_(metrics),
      options_(options),
      budget_(options.kv_budget_bytes),
      engine_(transformer, options.max_batch, options.debug_step_delay) {}

DecodeService::~DecodeService() { budget_.Shutdown(); }

grpc::Status DecodeService::GetStats(grpc::ServerContext*, const v1::StatsRequest*,
                                     v1::WorkerStats* out) {
  const KvBudget::Stats b = budget_.stats();
  const BatchEngine::Stats e = engine_.stats();
  out->set_role("decode");
  out->set_model_id(serving::ModelIdHex(model_.id));
  out->set_running(b.holders);
  out->set_waiting(b.waiting);
  out->set_kv_bytes_used(b.used_bytes);
  out->set_kv_budget_bytes(b.budget_bytes);
  out->set_requests_total(requests_.load());
  out->set_requests_waited_total(b.waited_total);
  out->set_requests_cancelled_total(cancelled_.load());
  out->set_bytes_fetched_total(bytes_fetched_.load());
  out->set_decode_steps_total(e.steps);
  out->set_decode_tokens_total(e.tokens);
  return grpc::Status::OK;
}

void DecodeService::UpdateGauges() {
  if (metrics_ == nullptr) return;
  const KvBudget::Stats b = budget_.stats();
  metrics_->num_requests_running->Set(b.holders);
  metrics_->num_requests_waiting->Set(b.waiting);
  metrics_->kv_cache_usage_perc->Set(
      b.budget_bytes ? static_cast<double>(b.used_bytes) / b.budget_bytes : 0);
}

grpc::Status DecodeService::Generate(grpc::ServerContext* context,
                                     const v1::DecodeRequest* request,
                                     grpc::ServerWriter<v1::DecodeResponse>* writer) {
  serving::InFlight in_flight;
  ++requests_;
  const absl::Time start = absl::Now();
  grpc::Status s = Run(context, *request, writer);
  if (metrics_) metrics_->RecordRpc("Generate", s.error_code(), absl::Now() - start);
  UpdateGauges();
  if (metrics_ && s.ok()) {
    metrics_->request_decode_time->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  return s;
}

grpc::Status DecodeService::Run(grpc::ServerContext* context,
                                const v1::DecodeRequest& request_ref,
                                grpc::ServerWriter<v1::DecodeResponse>* writer) {
  const v1::DecodeRequest* request = &request_ref;
  const model::ModelConfig& config = model_.config;
  const model::KvCacheShape shape = model::KvCacheShape::Of(config);
  const bool colocated = request->input_case() == v1::DecodeRequest::kPrompt;
  if (!colocated && request->input_case() != v1::DecodeRequest::kHandle) {
    return services::ToGrpcStatus(
        Invalid("the request has neither a handle nor a prompt"));
  }
  auto sampling = serving::ParseSampling(request->sampling());
  if (!sampling.ok()) return services::ToGrpcStatus(sampling.status());
  const int max_tokens = request->sampling().max_tokens();
  const v1::KvHandle& handle = request->handle();
  std::vector<int> prompt;
  if (colocated) {
    prompt.assign(request->prompt().ids().begin(), request->prompt().ids().end());
  } else {
    prompt.assign(handle.tokens().begin(), handle.tokens().end());
    if (handle.model_id() != serving::ModelIdHex(model_.id)) {
      return services::ToGrpcStatus(Invalid(absl::StrCat(
          "the handle is for model ", handle.model_id(),
          "; this decode worker serves model ", serving::ModelIdHex(model_.id))));
    }
  }
  if (absl::Status s = serving::CheckPrompt(prompt, max_tokens, config); !s.ok()) {
    return services::ToGrpcStatus(s);
  }
  auto mode =
      serving::ParseCacheConfig(colocated ? request->cache() : handle.cache(), config,
                                /*allow_fp32=*/colocated);
  if (!mode.ok()) return services::ToGrpcStatus(mode.status());
  const int n = static_cast<int>(prompt.size());

  // ---- the handle names exactly the blocks of this prompt ----
  std::vector<kvstore::BlockKey> keys;
  // The prefill worker's leases keep the handle's blocks in the store until
  // we fetched them: renewed while this request waits for KV memory,
  // released after the fetch, and on every early return.
  std::optional<serving::HeldLeases> leases;
  if (!colocated) {
    if (store_ == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "this decode worker runs without a KV store (colocated only)");
    }
    leases.emplace(store_, HandleLeases(handle, *store_),
                   absl::Milliseconds(handle.lease_ttl_ms()));
    if (request->first_token() < 0 || request->first_token() >= config.vocab_size) {
      return services::ToGrpcStatus(Invalid(
          absl::StrCat("first_token ", request->first_token(),
                       " is outside the vocabulary [0, ", config.vocab_size, ")")));
    }
    const std::vector<kernels::BlockEncoding> plan = serving::BlockPlan(*mode, n);
    const std::vector<kvstore::BlockKey> expected =
        serving::PlanKeys(prompt, model_.id, plan);
    if (handle.blocks_size() != static_cast<int>(plan.size())) {
      return services::ToGrpcStatus(
          Invalid(absl::StrCat("the handle names ", handle.blocks_size(), " blocks; a ",
                               n, "-token prompt has ", plan.size())));
    }
    for (int b = 0; b < handle.blocks_size(); ++b) {
      auto key = kvstore::BlockKey::FromBytes(handle.blocks(b).key());
      if (!key.ok() || *key != expected[b]) {
        return services::ToGrpcStatus(Invalid(absl::StrCat(
            "handle block ", b, "'s key does not match the prompt's block chain for ",
            mode->ToString(), " (a foreign or corrupted handle)")));
      }
      keys.push_back(*key);
    }
  }

  // ---- reserve the cache's bytes at its final length ----
  const uint64_t need = serving::CacheBytes(*mode, shape, n + max_tokens);
  const absl::Time queued = absl::Now();
  auto reservation = budget_.Reserve(need, [context] { return context->IsCancelled(); });
  UpdateGauges();
  if (!reservation.ok()) {
    if (context->IsCancelled()) ++cancelled_;
    return services::ToGrpcStatus(reservation.status());
  }
  if (metrics_) {
    metrics_->request_queue_time->Observe(absl::ToDoubleSeconds(absl::Now() - queued));
    metrics_->NoteKvMode(mode->ToString());
  }

  // ---- the cache: fetched (handle) or computed here (colocated) ----
  std::unique_ptr<model::KvCache> cache;
  uint64_t fetched = 0;
  int first = request->first_token();
  if (colocated) {
    auto fresh = model::NewKvCache(*mode, shape);
    if (!fresh.ok()) return services::ToGrpcStatus(fresh.status());
    auto logits = transformer_.Prefill(prompt, **fresh);
    if (!logits.ok()) return services::ToGrpcStatus(logits.status());
    first = serving::SampleToken(*logits, *sampling, 0);
    cache = std::move(*fresh);
  } else {
    const absl::Time t0 = absl::Now();
    auto blocks = store_->GetBlocks(keys);
    leases->Release();
    if (!blocks.ok()) {
      if (metrics_) {
        metrics_->kv_transfer_failures->Increment();
        if (blocks.status().code() == absl::StatusCode::kNotFound) {
          metrics_->kv_handle_misses->Increment();
        }
      }
      return services::ToGrpcStatus(blocks.status());
    }
    std::vector<model::BlockKvCache::ImportedBlock> imported;
    uint64_t quantized = 0;
    for (const kvstore::Block& b : *blocks) {
      imported.push_back({b.meta.encoding, b.meta.token_count, *b.bytes});
      fetched += b.bytes->size();
      if (!b.meta.encoding.is_fp16()) ++quantized;
    }
    bytes_fetched_ += fetched;
    if (metrics_) {
      metrics_->RecordTransfer(fetched);
      metrics_->kv_transfer_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - t0));
      metrics_->kv_blocks_quantized->Increment(static_cast<double>(quantized));
    }
    auto rebuilt = model::BlockKvCache::FromBlocks(*mode, shape, imported);
    if (!rebuilt.ok()) {
      return grpc::Status(grpc::StatusCode::DATA_LOSS,
                          absl::StrCat("the fetched blocks do not form a cache: ",
                                       rebuilt.status().message()));
    }
    cache = std::move(*rebuilt);
  }

  // ---- decode ----
  decode::SequenceParams params{
      *sampling, max_tokens,
      serving::StopIds(request->sampling(), options_.bos_id, options_.eos_id)};
  const bool first_stops = std::find(params.stop_ids.begin(), params.stop_ids.end(),
                                     first) != params.stop_ids.end();
  v1::DecodeResponse out;
  if (colocated && !first_stops) {
    out.add_tokens(first);
    writer->Write(out);
    out.Clear();
  }
  Sequence::Chunk chunk;
  model::KvCacheStats stats;
  if (first_stops || max_tokens == 1) {
    stats = cache->Stats();
    chunk.finished = true;
    chunk.finish_reason = first_stops ? "stop" : "length";
  } else {
    auto seq = std::make_shared<Sequence>(std::move(cache), std::move(*reservation),
                                          first, params);
    UpdateGauges();
    engine_.Add(seq);
    // Cancels the sequence and waits (briefly) until the engine dropped it,
    // so its memory is back in the budget when the RPC ends.
    auto cancel = [&](const char* why) {
      seq->Cancel();
      ++cancelled_;
      Sequence::Chunk rest;
      const absl::Time until = absl::Now() + absl::Seconds(2);
      while (!rest.finished && absl::Now() < until)
        seq->Next(&rest, absl::Milliseconds(20));
      return grpc::Status(grpc::StatusCode::CANCELLED, why);
    };
    while (true) {
      seq->Next(&chunk, absl::Milliseconds(20));
      if (context->IsCancelled()) return cancel("the client cancelled");
      if (chunk.finished) break;
      if (!chunk.tokens.empty()) {
        if (metrics_) metrics_->generation_tokens->Increment(chunk.tokens.size());
        out.mutable_tokens()->Add(chunk.tokens.begin(), chunk.tokens.end());
        if (!writer->Write(out)) return cancel("the client went away");
        out.Clear();
      }
    }
    if (metrics_) metrics_->generation_tokens->Increment(chunk.tokens.size());
    if (!chunk.error.ok()) return services::ToGrpcStatus(chunk.error);
    stats = seq->final_stats();
  }
  if (metrics_ && stats.stored_bits > 0) {
    metrics_->kv_compression_ratio->Set(stats.elements * 16 / stats.stored_bits);
  }
  out.mutable_tokens()->Add(chunk.tokens.begin(), chunk.tokens.end());
  out.set_finished(true);
  out.set_finish_reason(chunk.finish_reason);
  out.set_bytes_fetched(fetched);
  out.set_fp16_equivalent_bytes(static_cast<uint64_t>(stats.elements * 2));
  out.set_stored_bytes(static_cast<uint64_t>(stats.stored_bits / 8));
  writer->Write(out);
  return grpc::Status::OK;
}

}  // namespace kvq::decode

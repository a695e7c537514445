#include "services/prefill/prefill_service.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "model/block_kv_cache.h"
#include "services/common/grpc_status.h"
#include "services/serving/grpc_server.h"
#include "services/serving/kv_plan.h"
#include "services/serving/request.h"

namespace kvq::prefill {
namespace {

// Decrements on scope exit.
class Running {
 public:
  Running(std::atomic<uint32_t>* n, prometheus::Gauge* g) : n_(n), g_(g) {
    ++*n_;
    if (g_) g_->Increment();
  }
  ~Running() {
    --*n_;
    if (g_) g_->Decrement();
  }

 private:
  std::atomic<uint32_t>* n_;
  prometheus::Gauge* g_;
};

// The metadata of one of the model's blocks (its checksum is set later).
kvstore::BlockMeta MetaOf(const model::Model& model, kernels::BlockEncoding encoding,
                          int token_count) {
  const model::KvCacheShape shape = model::KvCacheShape::Of(model.config);
  kvstore::BlockMeta meta;
  meta.encoding = encoding;
  meta.model_id = model.id;
  meta.n_layers = shape.n_layers;
  meta.n_kv_heads = shape.n_kv_heads;
  meta.head_dim = shape.head_dim;
  meta.token_count = token_count;
  return meta;
}

}  // namespace

PrefillService::PrefillService(const model::Model& model,
                               const model::Transformer& transformer,
                               serving::StoreClient* store,
                               serving::ServingMetrics* metrics,
                               const PrefillOptions& options)
    : model_(model),
      transformer_(transformer),
      store_(store),
      metrics_(metrics),
      options_(options) {}

grpc::Status PrefillService::GetStats(grpc::ServerContext*, const v1::StatsRequest*,
                                      v1::WorkerStats* out) {
  out->set_role("prefill");
  out->set_model_id(serving::ModelIdHex(model_.id));
  out->set_running(running_.load());
  out->set_requests_total(requests_.load());
  out->set_blocks_reused_total(reused_.load());
  out->set_blocks_pushed_total(pushed_blocks_.load());
  out->set_bytes_pushed_total(pushed_bytes_.load());
  out->set_bytes_fetched_total(fetched_bytes_.load());
  return grpc::Status::OK;
}

grpc::Status PrefillService::Prefill(grpc::ServerContext* context,
                                     const v1::PrefillRequest* request,
                                     v1::PrefillResponse* response) {
  serving::InFlight in_flight;
  ++requests_;
  Running running(&running_, metrics_ ? metrics_->num_requests_running : nullptr);
  const absl::Time start = absl::Now();
  absl::Status s = Run(context, *request, response);
  if (metrics_) {
    metrics_->RecordRpc("Prefill", static_cast<grpc::StatusCode>(s.code()),
                        absl::Now() - start);
  }
  if (s.ok()) {
    response->mutable_stats()->set_seconds(absl::ToDoubleSeconds(absl::Now() - start));
    if (metrics_) {
      metrics_->request_prefill_time->Observe(absl::ToDoubleSeconds(absl::Now() - start));
    }
  }
  return services::ToGrpcStatus(s);
}

absl::Status PrefillService::Run(grpc::ServerContext* context,
                                 const v1::PrefillRequest& request,
                                 v1::PrefillResponse* response) {
  const model::ModelConfig& config = model_.config;
  const model::KvCacheShape shape = model::KvCacheShape::Of(config);
  const std::string model_hex = serving::ModelIdHex(model_.id);
  if (!request.model_id().empty() && request.model_id() != model_hex) {
    return absl::InvalidArgumentError(absl::StrCat("unknown model ", request.model_id(),
                                                   ": this prefill worker serves model ",
                                                   model_hex));
  }
  KVQ_ASSIGN_OR_RETURN(serving::Sampling sampling,
                       serving::ParseSampling(request.sampling()));
  const std::vector<int> tokens(request.tokens().begin(), request.tokens().end());
  KVQ_RETURN_IF_ERROR(
      serving::CheckPrompt(tokens, request.sampling().max_tokens(), config));
  KVQ_ASSIGN_OR_RETURN(model::KvMode mode,
                       serving::ParseCacheConfig(request.cache(), config, false));
  const int n = static_cast<int>(tokens.size());
  const int B = mode.block;
  const std::string mode_text = mode.ToString();
  if (metrics_) metrics_->NoteKvMode(mode_text);

  // ---- 1. the block chain under the residual rule for the whole prompt ----
  const std::vector<kernels::BlockEncoding> plan = serving::BlockPlan(mode, n);
  const std::vector<kvstore::BlockKey> keys = serving::PlanKeys(tokens, model_.id, plan);
  const int n_blocks = static_cast<int>(plan.size());

  // ---- 2. reuse the leading blocks the store holds ----
  // The Lookup leases the blocks it finds, so that they are not evicted
  // before we fetch them; the lease is renewed while held and released on
  // every return, once the handle's own lease (step 5) covers the blocks.
  absl::StatusOr<serving::StoreClient::LookupResult> found =
      store_->Lookup(keys, options_.lease_ttl);
  if (!found.ok()) {
    if (metrics_) metrics_->kv_transfer_failures->Increment();
    return found.status();
  }
  serving::HeldLeases prefix_lease(store_, std::move(found->leases), options_.lease_ttl);
  if (metrics_) {
    metrics_->prefix_cache_queries->Increment(n_blocks);
    metrics_->prefix_cache_hits->Increment(found->present_prefix);
  }
  if (options_.debug_fetch_delay > absl::ZeroDuration()) {
    absl::SleepFor(options_.debug_fetch_delay);
  }
  // At least the last token is computed: its logits give the first token.
  int reuse = std::min(found->present_prefix, (n - 1) / B);
  int lost = 0;
  std::unique_ptr<model::BlockKvCache> cache;
  uint64_t fetched = 0;
  if (reuse > 0) {
    const absl::Time t0 = absl::Now();
    auto blocks = store_->GetLeadingBlocks(absl::MakeConstSpan(keys).subspan(0, reuse));
    if (blocks.ok() && !blocks->empty()) {
      // Blocks gone since the Lookup (no lease: --kv_lease_ttl=0, or it
      // expired) are recomputed from the first of them.
      lost = reuse - static_cast<int>(blocks->size());
      std::vector<model::BlockKvCache::ImportedBlock> imported;
      for (const kvstore::Block& b : *blocks) {
        imported.push_back({b.meta.encoding, b.meta.token_count, *b.bytes});
        fetched += b.bytes->size();
      }
      auto rebuilt = model::BlockKvCache::FromBlocks(mode, shape, imported);
      if (rebuilt.ok()) {
        cache = std::move(*rebuilt);
        reuse = static_cast<int>(blocks->size());
      }
      if (metrics_) {
        metrics_->RecordTransfer(fetched);
        metrics_->kv_transfer_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - t0));
      }
    } else if (blocks.ok()) {
      lost = reuse;
    } else if (metrics_) {
      metrics_->kv_transfer_failures->Increment();
    }
    // Nothing usable: compute everything.
    if (cache == nullptr) {
      reuse = 0;
      fetched = 0;
    }
    if (metrics_ && lost > 0) metrics_->prefix_blocks_lost->Increment(lost);
  }
  if (cache == nullptr) {
    KVQ_ASSIGN_OR_RETURN(cache, model::BlockKvCache::Create(mode, shape));
  }
  reused_ += reuse;
  fetched_bytes_ += fetched;

  // ---- 3. compute the rest; stream each layer's parts as it completes ----
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<serving::BlockPutStream> put, store_->OpenPut());
  // Every new block is announced before compute (its checksum follows).
  for (int b = reuse; b < n_blocks; ++b) {
    put->Announce(static_cast<uint32_t>(b), keys[b],
                  MetaOf(model_, plan[b], std::min(B, n - b * B)));
  }
  struct DeferredPart {
    uint32_t block;
    int layer;
    std::string bytes;
  };
  std::vector<DeferredPart> deferred;  // options_.push_after_prefill only
  model::PrefillOptions prefill_options;
  prefill_options.on_layer = [&](int layer) -> absl::Status {
    for (int b = reuse; b < n_blocks; ++b) {
      absl::Span<const uint8_t> part = cache->LayerPart(b, layer);
      const size_t want = kernels::LayerBytes(plan[b], shape.n_kv_heads, shape.head_dim);
      if (part.size() != want) {
        return absl::InternalError(absl::StrCat(
            "block ", b, " layer ", layer, " holds ", part.size(), " bytes; its planned ",
            plan[b].is_fp16() ? "fp16" : "quantized", " encoding needs ", want));
      }
      std::string bytes(reinterpret_cast<const char*>(part.data()), part.size());
      if (options_.push_after_prefill) {
        deferred.push_back({static_cast<uint32_t>(b), layer, std::move(bytes)});
      } else {
        put->AddLayerPart(static_cast<uint32_t>(b), layer, std::move(bytes));
      }
    }
    if (options_.debug_layer_delay > absl::ZeroDuration()) {
      absl::SleepFor(options_.debug_layer_delay);
    }
    if (context->IsCancelled()) return absl::CancelledError("the client cancelled");
    return absl::OkStatus();
  };
  const absl::Time compute_start = absl::Now();
  KVQ_ASSIGN_OR_RETURN(
      std::vector<float> logits,
      transformer_.Prefill(absl::MakeConstSpan(tokens).subspan(reuse * B), *cache,
                           prefill_options));
  const absl::Time compute_end = absl::Now();
  for (DeferredPart& d : deferred)
    put->AddLayerPart(d.block, d.layer, std::move(d.bytes));
  uint64_t quantized = 0;
  for (int b = reuse; b < n_blocks; ++b) {
    if (cache->block_encoding(b) != plan[b] ||
        cache->block_tokens(b) != std::min(B, n - b * B)) {
      return absl::InternalError(absl::StrCat("block ", b,
                                              " of the cache disagrees with the "
                                              "residual-rule plan"));
    }
    put->Seal(static_cast<uint32_t>(b));
    if (!plan[b].is_fp16()) ++quantized;
  }
  // ---- 4. wait until the store committed every block ----
  const absl::Status committed = put->Finish();
  const absl::Time commit_end = absl::Now();
  const uint64_t pushed = put->bytes_sent();
  if (metrics_) {
    if (!committed.ok()) metrics_->kv_transfer_failures->Increment();
    metrics_->RecordTransfer(pushed);
    metrics_->kv_transfer_seconds->Observe(
        absl::ToDoubleSeconds(absl::Now() - compute_start));
    metrics_->kv_blocks_quantized->Increment(static_cast<double>(quantized));
    metrics_->prompt_tokens->Increment(n);
  }
  if (!committed.ok()) {
    return absl::Status(committed.code(), absl::StrCat("storing the prompt's blocks: ",
                                                       committed.message()));
  }
  pushed_blocks_ += n_blocks - reuse;
  pushed_bytes_ += pushed;
  const int first_token = serving::SampleToken(logits, sampling, 0);

  // ---- 5. lease the handle's blocks until a decode worker fetched them ----
  // (not when no decode follows: one token asked for, or a stop token)
  const auto& stops = request.sampling().stop_token_ids();
  const bool decode_follows =
      request.sampling().max_tokens() > 1 &&
      std::find(stops.begin(), stops.end(), first_token) == stops.end();
  std::vector<store::ShardLease> handle_leases;
  int reput = 0;
  if (options_.lease_ttl > absl::ZeroDuration() && decode_follows) {
    KVQ_ASSIGN_OR_RETURN(handle_leases, LeaseHandleBlocks(keys, plan, *cache, &reput));
  }
  prefix_lease.Release();

  // ---- 6. the handle and its leases ----
  const model::KvCacheStats stats = cache->Stats();
  const uint64_t fp16_bytes = static_cast<uint64_t>(stats.elements * 2);
  const uint64_t stored_bytes = static_cast<uint64_t>(stats.stored_bits / 8);
  if (metrics_ && stored_bytes > 0) {
    metrics_->kv_compression_ratio->Set(static_cast<double>(fp16_bytes) / stored_bytes);
  }
  v1::KvHandle* handle = response->mutable_handle();
  handle->set_model_id(model_hex);
  handle->mutable_tokens()->Add(tokens.begin(), tokens.end());
  handle->mutable_cache()->set_kv(mode_text);
  for (int b = 0; b < n_blocks; ++b) {
    v1::BlockRef* ref = handle->add_blocks();
    ref->set_key(keys[b].ToBytes());
    ref->mutable_encoding()->set_version(plan[b].version);
    ref->mutable_encoding()->set_block_tokens(plan[b].block_tokens);
    ref->mutable_encoding()->set_bits(plan[b].bits);
    ref->mutable_encoding()->set_group(plan[b].group);
    ref->set_tokens(std::min(B, n - b * B));
  }
  for (const store::ShardLease& l : handle_leases) {
    v1::StoreLease* lease = handle->add_leases();
    lease->set_store(store_->address(l.shard));
    lease->set_lease_id(l.id);
  }
  if (!handle_leases.empty()) {
    handle->set_lease_ttl_ms(
        static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.lease_ttl)));
  }
  response->set_first_token(first_token);
  v1::PrefillStats* st = response->mutable_stats();
  st->set_blocks_total(n_blocks);
  st->set_blocks_reused(reuse);
  st->set_tokens_computed(n - reuse * B);
  st->set_bytes_pushed(pushed);
  st->set_bytes_fetched(fetched);
  st->set_fp16_equivalent_bytes(fp16_bytes);
  st->set_stored_bytes(stored_bytes);
  st->set_compute_seconds(absl::ToDoubleSeconds(compute_end - compute_start));
  // compute_end follows the last layer's feed-forward (its KV part went out
  // before it) and the one-token logits.
  st->set_transfer_exposed_seconds(absl::ToDoubleSeconds(commit_end - compute_end));
  st->set_layers(static_cast<uint32_t>(shape.n_layers));
  st->set_prefix_blocks_lost(lost);
  st->set_blocks_reput(reput);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<store::ShardLease>> PrefillService::LeaseHandleBlocks(
    absl::Span<const kvstore::BlockKey> keys,
    absl::Span<const kernels::BlockEncoding> plan, const model::BlockKvCache& cache,
    int* reput) {
  const absl::Duration ttl = options_.lease_ttl;
  KVQ_ASSIGN_OR_RETURN(serving::StoreClient::LookupResult found,
                       store_->Lookup(keys, ttl));
  serving::HeldLeases held(store_, std::move(found.leases), absl::ZeroDuration());
  // Blocks evicted since their commit (the store is under pressure): put
  // them again from the cache, once, and lease them too.
  std::vector<kvstore::Block> again;
  std::vector<kvstore::BlockKey> again_keys;
  for (size_t b = 0; b < keys.size(); ++b) {
    if (found.present[b]) continue;
    kvstore::BlockMeta meta =
        MetaOf(model_, plan[b], cache.block_tokens(static_cast<int>(b)));
    auto bytes =
        std::make_shared<const std::string>(cache.ExportBlock(static_cast<int>(b)));
    meta.checksum = kvstore::BlockChecksum(*bytes);
    again.push_back({keys[b], meta, std::move(bytes)});
    again_keys.push_back(keys[b]);
  }
  std::vector<store::ShardLease> leases = held.Take();
  if (again.empty()) return leases;
  *reput = static_cast<int>(again.size());
  if (metrics_) metrics_->kv_blocks_reput->Increment(static_cast<double>(again.size()));
  absl::Status s = store_->PutBlocks(again);
  absl::StatusOr<serving::StoreClient::LookupResult> second =
      s.ok() ? store_->Lookup(again_keys, ttl) : s;
  if (second.ok()) {
    leases.insert(leases.end(), second->leases.begin(), second->leases.end());
  }
  if (!second.ok() || second->present_prefix < static_cast<int>(again_keys.size())) {
    (void)store_->ReleaseLeases(leases);
    return second.ok() ? absl::ResourceExhaustedError(absl::StrCat(
                             "the KV store evicted ", again.size(),
                             " of the prompt's blocks right after committing them, and "
                             "again after they were put back: it is too small for the "
                             "load (raise its --capacity_bytes)"))
                       : absl::Status(second.status().code(),
                                      absl::StrCat("putting back the prompt's evicted "
                                                   "blocks: ",
                                                   second.status().message()));
  }
  return leases;
}

}  // namespace kvq::prefill

#include "services/prefill/prefill_worker.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "services/serving/kv_plan.h"
#include "services/serving/request.h"

namespace kvq::prefill {
namespace {

// Counts a request as running for its lifetime.
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

}  // namespace

PrefillWorker::PrefillWorker(const model::Model& model,
                             const model::Transformer& transformer,
                             serving::WorkerStore* store,
                             serving::ServingMetrics* metrics,
                             const PrefillOptions& options)
    : model_(model),
      transformer_(transformer),
      store_(store),
      metrics_(metrics),
      options_(options) {}

int PrefillWorker::Plan::block_tokens(int b) const {
  const int B = mode.block;
  return std::min(B, static_cast<int>(tokens.size()) - b * B);
}

PrefillWorker::Stats PrefillWorker::stats() const {
  return {running_.load(),       requests_.load(),     reused_.load(),
          pushed_blocks_.load(), pushed_bytes_.load(), fetched_bytes_.load()};
}

kvstore::BlockMeta PrefillWorker::MetaOf(kernels::BlockEncoding encoding,
                                         int token_count) const {
  const model::KvCacheShape shape = model::KvCacheShape::Of(model_.config);
  kvstore::BlockMeta meta;
  meta.encoding = encoding;
  meta.model_id = model_.id;
  meta.n_layers = shape.n_layers;
  meta.n_kv_heads = shape.n_kv_heads;
  meta.head_dim = shape.head_dim;
  meta.token_count = token_count;
  return meta;
}

absl::StatusOr<serving::PrefillResult> PrefillWorker::Run(
    const serving::PrefillRequest& request, const serving::CancelledFn& cancelled) {
  ++requests_;
  Running running(&running_, metrics_ ? metrics_->num_requests_running : nullptr);
  const absl::Time start = absl::Now();
  KVQ_ASSIGN_OR_RETURN(Plan plan, MakePlan(request));
  KVQ_ASSIGN_OR_RETURN(Prefix prefix, ReusePrefix(plan));
  KVQ_ASSIGN_OR_RETURN(Computed computed, ComputeAndPush(plan, prefix, cancelled));
  const int first_token =
      model::SampleToken(computed.logits, request.generation.sampling, 0);

  // A decode follows unless one token was asked for or the first one stops.
  const std::vector<int>& stops = request.generation.stop_ids;
  const bool decode_follows =
      request.generation.max_tokens > 1 &&
      std::find(stops.begin(), stops.end(), first_token) == stops.end();
  std::vector<store::ShardLease> handle_leases;
  int reput = 0;
  if (options_.lease_ttl > absl::ZeroDuration() && decode_follows) {
    KVQ_ASSIGN_OR_RETURN(handle_leases, LeaseHandleBlocks(plan, *prefix.cache, &reput));
  }
  prefix.lease->Release();
  serving::PrefillResult result =
      MakeResult(plan, prefix, computed, first_token, handle_leases, reput);
  result.stats.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (metrics_) metrics_->request_prefill_time->Observe(result.stats.seconds);
  return result;
}

absl::StatusOr<PrefillWorker::Plan> PrefillWorker::MakePlan(
    const serving::PrefillRequest& request) const {
  const model::ModelConfig& config = model_.config;
  if (request.model_id && *request.model_id != model_.id) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown model ", serving::ModelIdHex(*request.model_id),
        ": this prefill worker serves model ", serving::ModelIdHex(model_.id)));
  }
  KVQ_RETURN_IF_ERROR(
      serving::CheckPrompt(request.tokens, request.generation.max_tokens, config));
  Plan plan;
  KVQ_ASSIGN_OR_RETURN(plan.mode,
                       serving::ResolveKvMode(request.kv, config, /*allow_fp32=*/false,
                                              options_.default_kv));
  plan.tokens = request.tokens;
  plan.encodings = serving::BlockPlan(plan.mode, static_cast<int>(request.tokens.size()));
  plan.keys = serving::PlanKeys(plan.tokens, model_.id, plan.encodings);
  if (metrics_) metrics_->NoteKvMode(serving::KvModeLabel(plan.mode));
  return plan;
}

absl::StatusOr<PrefillWorker::Prefix> PrefillWorker::ReusePrefix(const Plan& plan) {
  const model::KvCacheShape shape = model::KvCacheShape::Of(model_.config);
  const int n = static_cast<int>(plan.tokens.size());
  const int B = plan.mode.block;
  const int n_blocks = static_cast<int>(plan.keys.size());
  // The Lookup leases the blocks it finds, so that they are not evicted
  // before we fetch them; the lease is renewed while held and released once
  // the handle's own lease covers the blocks.
  absl::StatusOr<store::LookupResult> found =
      store_->Lookup(plan.keys, options_.lease_ttl);
  if (!found.ok()) {
    if (metrics_) metrics_->kv_transfer_failures->Increment();
    return found.status();
  }
  Prefix prefix;
  prefix.lease = std::make_unique<serving::HeldLeases>(store_, std::move(found->leases),
                                                       options_.lease_ttl);
  if (metrics_) {
    metrics_->prefix_cache_queries->Increment(n_blocks);
    metrics_->prefix_cache_hits->Increment(static_cast<double>(found->present_prefix));
  }
  if (options_.debug_fetch_delay > absl::ZeroDuration()) {
    absl::SleepFor(options_.debug_fetch_delay);
  }
  // At least the last token is computed: its logits give the first token.
  int reuse = std::min(static_cast<int>(found->present_prefix), (n - 1) / B);
  if (reuse > 0) {
    const absl::Time t0 = absl::Now();
    auto blocks =
        store_->GetLeadingBlocks(absl::MakeConstSpan(plan.keys).subspan(0, reuse));
    uint64_t fetched = 0;
    if (blocks.ok() && !blocks->empty()) {
      // Blocks gone since the Lookup (no lease: --kv_lease_ttl=0, or it
      // expired) are recomputed from the first of them.
      prefix.lost = reuse - static_cast<int>(blocks->size());
      std::vector<model::BlockKvCache::ImportedBlock> imported;
      for (const kvstore::Block& b : *blocks) {
        // A block with a NaN or Inf (a faulty or hostile writer) is not
        // reused: the prefix is cut there and the rest recomputed.
        if (!kvstore::CheckFiniteValues(b.meta, *b.bytes).ok()) {
          prefix.lost += static_cast<int>(blocks->size() - imported.size());
          blocks->resize(imported.size());
          break;
        }
        imported.push_back({b.meta.encoding, b.meta.token_count, *b.bytes});
        fetched += b.bytes->size();
      }
      auto rebuilt = model::BlockKvCache::FromBlocks(plan.mode, shape, imported);
      if (rebuilt.ok()) {
        prefix.cache = std::move(*rebuilt);
        prefix.reused = static_cast<int>(blocks->size());
        prefix.fetched_bytes = fetched;
      }
      if (metrics_) {
        metrics_->RecordTransfer(fetched);
        metrics_->kv_transfer_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - t0));
      }
    } else if (blocks.ok()) {
      prefix.lost = reuse;
    } else if (metrics_) {
      metrics_->kv_transfer_failures->Increment();
    }
    if (metrics_ && prefix.lost > 0) metrics_->prefix_blocks_lost->Increment(prefix.lost);
  }
  // Nothing usable: compute everything.
  if (prefix.cache == nullptr) {
    prefix.reused = 0;
    prefix.fetched_bytes = 0;
    KVQ_ASSIGN_OR_RETURN(prefix.cache, model::BlockKvCache::Create(plan.mode, shape));
  }
  reused_ += prefix.reused;
  fetched_bytes_ += prefix.fetched_bytes;
  return prefix;
}

absl::StatusOr<PrefillWorker::Computed> PrefillWorker::ComputeAndPush(
    const Plan& plan, Prefix& prefix, const serving::CancelledFn& cancelled) {
  const model::KvCacheShape shape = model::KvCacheShape::Of(model_.config);
  const int n = static_cast<int>(plan.tokens.size());
  const int n_blocks = static_cast<int>(plan.keys.size());
  const int reuse = prefix.reused;
  model::BlockKvCache& cache = *prefix.cache;
  KVQ_ASSIGN_OR_RETURN(std::unique_ptr<serving::BlockPutStream> put, store_->OpenPut());
  // Every new block is announced before compute (its checksum follows).
  for (int b = reuse; b < n_blocks; ++b) {
    put->Announce(static_cast<uint32_t>(b), plan.keys[b],
                  MetaOf(plan.encodings[b], plan.block_tokens(b)));
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
      absl::Span<const uint8_t> part = cache.LayerPart(b, layer);
      const size_t want = kernels::LayerBytes(
          plan.encodings[b], {shape.n_layers, shape.n_kv_heads, shape.head_dim}, layer);
      if (part.size() != want) {
        return absl::InternalError(absl::StrCat(
            "block ", b, " layer ", layer, " holds ", part.size(), " bytes; its planned ",
            plan.encodings[b].is_fp16() ? "fp16" : "quantized", " encoding needs ",
            want));
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
    if (cancelled && cancelled()) return absl::CancelledError("the client cancelled");
    return absl::OkStatus();
  };
  Computed computed;
  const absl::Time compute_start = absl::Now();
  KVQ_ASSIGN_OR_RETURN(
      computed.logits,
      transformer_.Prefill(
          absl::MakeConstSpan(plan.tokens).subspan(reuse * plan.mode.block), cache,
          prefill_options));
  const absl::Time compute_end = absl::Now();
  for (DeferredPart& d : deferred)
    put->AddLayerPart(d.block, d.layer, std::move(d.bytes));
  for (int b = reuse; b < n_blocks; ++b) {
    if (cache.block_encoding(b) != plan.encodings[b] ||
        cache.block_tokens(b) != plan.block_tokens(b)) {
      return absl::InternalError(absl::StrCat(
          "block ", b, " of the cache disagrees with the residual-rule plan"));
    }
    put->Seal(static_cast<uint32_t>(b));
    if (!plan.encodings[b].is_fp16()) ++computed.blocks_quantized;
  }
  // Wait until the store committed every block.
  const absl::Status committed = put->Finish();
  const absl::Time commit_end = absl::Now();
  computed.bytes_pushed = put->bytes_sent();
  computed.compute = compute_end - compute_start;
  // compute_end follows the last layer's feed-forward (its KV part went out
  // before it) and the one-token logits.
  computed.transfer_exposed = commit_end - compute_end;
  if (metrics_) {
    if (!committed.ok()) metrics_->kv_transfer_failures->Increment();
    metrics_->RecordTransfer(computed.bytes_pushed);
    metrics_->kv_transfer_seconds->Observe(
        absl::ToDoubleSeconds(absl::Now() - compute_start));
    metrics_->kv_blocks_quantized->Increment(
        static_cast<double>(computed.blocks_quantized));
    metrics_->prompt_tokens->Increment(n);
  }
  if (!committed.ok()) {
    return absl::Status(committed.code(), absl::StrCat("storing the prompt's blocks: ",
                                                       committed.message()));
  }
  pushed_blocks_ += n_blocks - reuse;
  pushed_bytes_ += computed.bytes_pushed;
  return computed;
}

absl::StatusOr<std::vector<store::ShardLease>> PrefillWorker::LeaseHandleBlocks(
    const Plan& plan, const model::BlockKvCache& cache, int* reput) {
  const absl::Duration ttl = options_.lease_ttl;
  KVQ_ASSIGN_OR_RETURN(store::LookupResult found, store_->Lookup(plan.keys, ttl));
  serving::HeldLeases held(store_, std::move(found.leases), absl::ZeroDuration());
  // Blocks evicted since their commit (the store is under pressure): put
  // them again from the cache, once, and lease them too.
  std::vector<kvstore::Block> again;
  std::vector<kvstore::BlockKey> again_keys;
  for (size_t b = 0; b < plan.keys.size(); ++b) {
    if (found.present[b]) continue;
    kvstore::BlockMeta meta =
        MetaOf(plan.encodings[b], cache.block_tokens(static_cast<int>(b)));
    auto bytes =
        std::make_shared<const std::string>(cache.ExportBlock(static_cast<int>(b)));
    meta.checksum = kvstore::BlockChecksum(*bytes);
    again.push_back({plan.keys[b], meta, std::move(bytes)});
    again_keys.push_back(plan.keys[b]);
  }
  std::vector<store::ShardLease> leases = held.Take();
  if (again.empty()) return leases;
  *reput = static_cast<int>(again.size());
  if (metrics_) metrics_->kv_blocks_reput->Increment(static_cast<double>(again.size()));
  absl::Status s = store_->PutBlocks(again);
  absl::StatusOr<store::LookupResult> second =
      s.ok() ? store_->Lookup(again_keys, ttl) : s;
  if (second.ok()) {
    leases.insert(leases.end(), second->leases.begin(), second->leases.end());
  }
  if (!second.ok() || static_cast<size_t>(second->present_prefix) < again_keys.size()) {
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

serving::PrefillResult PrefillWorker::MakeResult(
    const Plan& plan, const Prefix& prefix, const Computed& computed, int first_token,
    absl::Span<const store::ShardLease> leases, int reput) const {
  const model::KvCacheShape shape = model::KvCacheShape::Of(model_.config);
  const int n = static_cast<int>(plan.tokens.size());
  const model::KvCacheStats cache_stats = prefix.cache->Stats();
  const uint64_t fp16_bytes = static_cast<uint64_t>(cache_stats.elements * 2);
  const uint64_t stored_bytes = static_cast<uint64_t>(cache_stats.stored_bits / 8);
  if (metrics_ && stored_bytes > 0) {
    metrics_->kv_compression_ratio->Set(static_cast<double>(fp16_bytes) / stored_bytes);
  }
  serving::PrefillResult r;
  serving::KvHandle& handle = r.handle;
  handle.model_id = model_.id;
  handle.tokens = plan.tokens;
  handle.kv = plan.mode.ToString();
  for (size_t b = 0; b < plan.keys.size(); ++b) {
    handle.blocks.push_back(
        {plan.keys[b], plan.encodings[b], plan.block_tokens(static_cast<int>(b))});
  }
  for (const store::ShardLease& l : leases) {
    handle.leases.push_back({store_->address(l.shard), l.id});
  }
  if (!leases.empty()) handle.lease_ttl = options_.lease_ttl;
  r.first_token = first_token;
  serving::PrefillStats& st = r.stats;
  st.blocks_total = static_cast<int>(plan.keys.size());
  st.blocks_reused = prefix.reused;
  st.tokens_computed = n - prefix.reused * plan.mode.block;
  st.bytes_pushed = computed.bytes_pushed;
  st.bytes_fetched = prefix.fetched_bytes;
  st.fp16_equivalent_bytes = fp16_bytes;
  st.stored_bytes = stored_bytes;
  st.compute_seconds = absl::ToDoubleSeconds(computed.compute);
  st.transfer_exposed_seconds = absl::ToDoubleSeconds(computed.transfer_exposed);
  st.layers = shape.n_layers;
  st.prefix_blocks_lost = prefix.lost;
  st.blocks_reput = reput;
  return r;
}

}  // namespace kvq::prefill

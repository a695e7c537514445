#include "services/decode/decode_worker.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "model/block_kv_cache.h"
#include "model/kv_cache_factory.h"
#include "services/serving/kv_plan.h"
#include "services/serving/request.h"

namespace kvq::decode {
namespace {

// The handle's leases on the shards this worker knows (a shard it does not
// know is left to its lease's TTL).
std::vector<store::ShardLease> HandleLeases(const serving::KvHandle& handle,
                                            const serving::WorkerStore& store) {
  std::vector<store::ShardLease> out;
  for (const serving::HandleLease& l : handle.leases) {
    const int shard = store.ShardIndex(l.store);
    if (shard >= 0 && l.lease_id != 0) {
      out.push_back({static_cast<size_t>(shard), l.lease_id});
    }
  }
  return out;
}

// DATA_LOSS unless the fetched block `b` is the one the handle names: its
// encoding, token count, model and shape.
absl::Status CheckFetched(const kvstore::Block& block, int b,
                          const kernels::BlockEncoding& encoding, int tokens,
                          uint64_t model_id, const model::KvCacheShape& shape) {
  const kvstore::BlockMeta& m = block.meta;
  std::string why;
  if (m.encoding != encoding) {
    why = absl::StrCat("its encoding (bits ", m.encoding.bits, ", B ",
                       m.encoding.block_tokens, ", G ", m.encoding.group,
                       ") is not the handle's (bits ", encoding.bits, ", B ",
                       encoding.block_tokens, ", G ", encoding.group, ")");
  } else if (static_cast<int>(m.token_count) != tokens) {
    why = absl::StrCat("it holds ", m.token_count, " tokens, the handle says ", tokens);
  } else if (m.model_id != model_id) {
    why = absl::StrCat("it is for model ", serving::ModelIdHex(m.model_id));
  } else if (static_cast<int>(m.n_layers) != shape.n_layers ||
             static_cast<int>(m.n_kv_heads) != shape.n_kv_heads ||
             static_cast<int>(m.head_dim) != shape.head_dim) {
    why = absl::StrCat("its shape (", m.n_layers, " layers, ", m.n_kv_heads,
                       " KV heads, head_dim ", m.head_dim, ") is not the model's");
  }
  if (!why.empty()) {
    return absl::DataLossError(
        absl::StrCat("block ", b, " from the KV store does not match the handle: ", why));
  }
  if (absl::Status s = kvstore::CheckFiniteValues(m, *block.bytes); !s.ok()) {
    return absl::DataLossError(
        absl::StrCat("block ", b, " from the KV store: ", s.message()));
  }
  return absl::OkStatus();
}

}  // namespace

DecodeWorker::DecodeWorker(const model::Model& model,
                           const model::Transformer& transformer,
                           serving::WorkerStore* store, serving::ServingMetrics* metrics,
                           const DecodeOptions& options)
    : model_(model),
      transformer_(transformer),
      store_(store),
      metrics_(metrics),
      options_(options),
      budget_(options.kv_budget_bytes),
      engine_(transformer, options.max_batch, options.debug_step_delay) {}

DecodeWorker::~DecodeWorker() { budget_.Shutdown(); }

DecodeWorker::Stats DecodeWorker::stats() const {
  return {budget_.stats(), engine_.stats(), requests_.load(), cancelled_.load(),
          bytes_fetched_.load()};
}

void DecodeWorker::UpdateGauges() {
  if (metrics_ == nullptr) return;
  const KvBudget::Stats b = budget_.stats();
  metrics_->num_requests_running->Set(b.holders);
  metrics_->num_requests_waiting->Set(b.waiting);
  metrics_->kv_cache_usage_perc->Set(
      b.budget_bytes ? static_cast<double>(b.used_bytes) / b.budget_bytes : 0);
}

absl::Status DecodeWorker::Generate(const serving::DecodeRequest& request,
                                    const serving::DecodeSink& sink,
                                    const serving::CancelledFn& cancelled) {
  ++requests_;
  const absl::Time start = absl::Now();
  absl::Status s = Run(request, sink, cancelled);
  UpdateGauges();
  if (metrics_ && s.ok()) {
    metrics_->request_decode_time->Observe(absl::ToDoubleSeconds(absl::Now() - start));
  }
  return s;
}

absl::StatusOr<DecodeWorker::Checked> DecodeWorker::Check(
    const serving::DecodeRequest& request) const {
  const model::ModelConfig& config = model_.config;
  const bool colocated = !request.handle.has_value();
  Checked c;
  if (colocated) {
    c.prompt = request.prompt;
  } else {
    const serving::KvHandle& handle = *request.handle;
    c.prompt = handle.tokens;
    if (handle.model_id != model_.id) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the handle is for model ", serving::ModelIdHex(handle.model_id),
          "; this decode worker serves model ", serving::ModelIdHex(model_.id)));
    }
  }
  KVQ_RETURN_IF_ERROR(
      serving::CheckPrompt(c.prompt, request.generation.max_tokens, config));
  KVQ_ASSIGN_OR_RETURN(
      c.mode, serving::ResolveKvMode(colocated ? request.kv : request.handle->kv, config,
                                     /*allow_fp32=*/colocated, options_.default_kv));
  if (colocated) return c;

  // The handle names exactly the blocks of this prompt.
  const serving::KvHandle& handle = *request.handle;
  if (store_ == nullptr) {
    return absl::UnavailableError(
        "this decode worker runs without a KV store (colocated only)");
  }
  if (request.first_token < 0 || request.first_token >= config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat("first_token ", request.first_token,
                                                   " is outside the vocabulary [0, ",
                                                   config.vocab_size, ")"));
  }
  const int n = static_cast<int>(c.prompt.size());
  c.encodings = serving::BlockPlan(c.mode, n);
  c.keys = serving::PlanKeys(c.prompt, model_.id, c.encodings);
  if (handle.blocks.size() != c.encodings.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the handle names ", handle.blocks.size(), " blocks; a ", n,
                     "-token prompt has ", c.encodings.size()));
  }
  for (size_t b = 0; b < handle.blocks.size(); ++b) {
    if (handle.blocks[b].key != c.keys[b]) {
      return absl::InvalidArgumentError(absl::StrCat(
          "handle block ", b, "'s key does not match the prompt's block chain for ",
          c.mode.ToString(), " (a foreign or corrupted handle)"));
    }
  }
  return c;
}

absl::StatusOr<KvBudget::Reservation> DecodeWorker::Reserve(
    const Checked& checked, int max_tokens, const serving::CancelledFn& cancelled) {
  const model::KvCacheShape shape = model::KvCacheShape::Of(model_.config);
  const uint64_t need = serving::CacheBytes(
      checked.mode, shape, static_cast<int>(checked.prompt.size()) + max_tokens);
  const absl::Time queued = absl::Now();
  auto reservation =
      budget_.Reserve(need, [&cancelled] { return cancelled && cancelled(); });
  UpdateGauges();
  if (!reservation.ok()) {
    if (cancelled && cancelled()) ++cancelled_;
    return reservation.status();
  }
  if (metrics_) {
    metrics_->request_queue_time->Observe(absl::ToDoubleSeconds(absl::Now() - queued));
    metrics_->NoteKvMode(serving::KvModeLabel(checked.mode));
  }
  return reservation;
}

absl::StatusOr<std::unique_ptr<model::KvCache>> DecodeWorker::FetchCache(
    const Checked& checked, uint64_t* fetched) {
  const model::KvCacheShape shape = model::KvCacheShape::Of(model_.config);
  const int B = checked.mode.block;
  const int n = static_cast<int>(checked.prompt.size());
  const absl::Time t0 = absl::Now();
  auto blocks = store_->GetBlocks(checked.keys);
  if (!blocks.ok()) {
    if (metrics_) {
      metrics_->kv_transfer_failures->Increment();
      if (blocks.status().code() == absl::StatusCode::kNotFound) {
        metrics_->kv_handle_misses->Increment();
      }
    }
    return blocks.status();
  }
  std::vector<model::BlockKvCache::ImportedBlock> imported;
  uint64_t quantized = 0;
  *fetched = 0;
  for (size_t b = 0; b < blocks->size(); ++b) {
    const kvstore::Block& block = (*blocks)[b];
    KVQ_RETURN_IF_ERROR(CheckFetched(block, static_cast<int>(b), checked.encodings[b],
                                     std::min(B, n - static_cast<int>(b) * B), model_.id,
                                     shape));
    imported.push_back({block.meta.encoding, block.meta.token_count, *block.bytes});
    *fetched += block.bytes->size();
    if (!block.meta.encoding.is_fp16()) ++quantized;
  }
  bytes_fetched_ += *fetched;
  if (metrics_) {
    metrics_->RecordTransfer(*fetched);
    metrics_->kv_transfer_seconds->Observe(absl::ToDoubleSeconds(absl::Now() - t0));
    metrics_->kv_blocks_quantized->Increment(static_cast<double>(quantized));
  }
  auto rebuilt = model::BlockKvCache::FromBlocks(checked.mode, shape, imported);
  if (!rebuilt.ok()) {
    return absl::DataLossError(absl::StrCat("the fetched blocks do not form a cache: ",
                                            rebuilt.status().message()));
  }
  return std::unique_ptr<model::KvCache>(std::move(*rebuilt));
}

absl::StatusOr<std::unique_ptr<model::KvCache>> DecodeWorker::ComputeCache(
    const Checked& checked, const model::Sampling& sampling, int* first) {
  KVQ_ASSIGN_OR_RETURN(
      std::unique_ptr<model::KvCache> cache,
      model::NewKvCache(checked.mode, model::KvCacheShape::Of(model_.config)));
  KVQ_ASSIGN_OR_RETURN(std::vector<float> logits,
                       transformer_.Prefill(checked.prompt, *cache));
  *first = model::SampleToken(logits, sampling, 0);
  return cache;
}

absl::Status DecodeWorker::Run(const serving::DecodeRequest& request,
                               const serving::DecodeSink& sink,
                               const serving::CancelledFn& cancelled) {
  const bool colocated = !request.handle.has_value();
  // The prefill worker's leases keep the handle's blocks in the store until
  // we fetched them: renewed while this request waits for KV memory,
  // released after the fetch, and on every early return.
  std::optional<serving::HeldLeases> leases;
  if (!colocated && store_ != nullptr) {
    leases.emplace(store_, HandleLeases(*request.handle, *store_),
                   request.handle->lease_ttl);
  }
  KVQ_ASSIGN_OR_RETURN(Checked checked, Check(request));
  KVQ_ASSIGN_OR_RETURN(KvBudget::Reservation reservation,
                       Reserve(checked, request.generation.max_tokens, cancelled));
  std::unique_ptr<model::KvCache> cache;
  uint64_t fetched = 0;
  int first = request.first_token;
  if (colocated) {
    KVQ_ASSIGN_OR_RETURN(cache,
                         ComputeCache(checked, request.generation.sampling, &first));
  } else {
    absl::StatusOr<std::unique_ptr<model::KvCache>> got = FetchCache(checked, &fetched);
    leases->Release();
    if (!got.ok()) return got.status();
    cache = std::move(*got);
  }
  return Decode(std::move(cache), std::move(reservation), first, request, colocated,
                fetched, sink, cancelled);
}

absl::Status DecodeWorker::Decode(std::unique_ptr<model::KvCache> cache,
                                  KvBudget::Reservation reservation, int first,
                                  const serving::DecodeRequest& request, bool colocated,
                                  uint64_t fetched, const serving::DecodeSink& sink,
                                  const serving::CancelledFn& cancelled) {
  const int max_tokens = request.generation.max_tokens;
  SequenceParams params{
      request.generation.sampling, max_tokens,
      serving::StopIds(request.generation, options_.bos_id, options_.eos_id)};
  const bool first_stops = std::find(params.stop_ids.begin(), params.stop_ids.end(),
                                     first) != params.stop_ids.end();
  serving::DecodeChunk out;
  if (colocated && !first_stops) {
    out.tokens.push_back(first);
    if (!sink(out)) return absl::CancelledError("the client went away");
    out.tokens.clear();
  }
  Sequence::Chunk chunk;
  model::KvCacheStats stats;
  if (first_stops || max_tokens == 1) {
    stats = cache->Stats();
    chunk.finished = true;
    chunk.finish_reason = first_stops ? "stop" : "length";
  } else {
    auto seq = std::make_shared<Sequence>(std::move(cache), std::move(reservation), first,
                                          params);
    UpdateGauges();
    engine_.Add(seq);
    // Cancels the sequence and waits (briefly) until the engine dropped it,
    // so its memory is back in the budget when the call ends.
    auto cancel = [&](const char* why) {
      seq->Cancel();
      ++cancelled_;
      Sequence::Chunk rest;
      const absl::Time until = absl::Now() + absl::Seconds(2);
      while (!rest.finished && absl::Now() < until)
        seq->Next(&rest, absl::Milliseconds(20));
      return absl::CancelledError(why);
    };
    while (true) {
      seq->Next(&chunk, absl::Milliseconds(20));
      if (cancelled && cancelled()) return cancel("the client cancelled");
      if (chunk.finished) break;
      if (!chunk.tokens.empty()) {
        if (metrics_) metrics_->generation_tokens->Increment(chunk.tokens.size());
        out.tokens = chunk.tokens;
        if (!sink(out)) return cancel("the client went away");
        out.tokens.clear();
      }
    }
    if (metrics_) metrics_->generation_tokens->Increment(chunk.tokens.size());
    if (!chunk.error.ok()) return chunk.error;
    stats = seq->final_stats();
  }
  if (metrics_ && stats.stored_bits > 0) {
    metrics_->kv_compression_ratio->Set(stats.elements * 16 / stats.stored_bits);
  }
  out.tokens = chunk.tokens;
  out.finished = true;
  out.finish_reason = chunk.finish_reason;
  out.bytes_fetched = fetched;
  out.fp16_equivalent_bytes = static_cast<uint64_t>(stats.elements * 2);
  out.stored_bytes = static_cast<uint64_t>(stats.stored_bits / 8);
  sink(out);
  return absl::OkStatus();
}

}  // namespace kvq::decode

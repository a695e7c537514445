#include "services/decode/decode_service.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "model/block_kv_cache.h"
#include "model/kv_cache_factory.h"
#include "services/serving/kv_plan.h"
#include "services/serving/request.h"

namespace kvq::decode {
namespace {

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

absl::Status Invalid(const std::string& m) { return absl::InvalidArgumentError(m); }

}  // namespace

DecodeService::DecodeService(const model::Model& model,
                             const model::Transformer& transformer,
                             serving::StoreClient* store, const DecodeOptions& options)
    : model_(model),
      transformer_(transformer),
      store_(store),
      options_(options),
      budget_(options.kv_budget_bytes),
      engine_(transformer, options.max_batch) {}

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
  (void)e;
  return grpc::Status::OK;
}

grpc::Status DecodeService::Generate(grpc::ServerContext* context,
                                     const v1::DecodeRequest* request,
                                     grpc::ServerWriter<v1::DecodeResponse>* writer) {
  ++requests_;
  const model::ModelConfig& config = model_.config;
  const model::KvCacheShape shape = model::KvCacheShape::Of(config);
  const bool colocated = request->input_case() == v1::DecodeRequest::kPrompt;
  if (!colocated && request->input_case() != v1::DecodeRequest::kHandle) {
    return ToGrpc(Invalid("the request has neither a handle nor a prompt"));
  }
  auto sampling = serving::ParseSampling(request->sampling());
  if (!sampling.ok()) return ToGrpc(sampling.status());
  const int max_tokens = request->sampling().max_tokens();
  const v1::KvHandle& handle = request->handle();
  std::vector<int> prompt;
  if (colocated) {
    prompt.assign(request->prompt().ids().begin(), request->prompt().ids().end());
  } else {
    prompt.assign(handle.tokens().begin(), handle.tokens().end());
    if (handle.model_id() != serving::ModelIdHex(model_.id)) {
      return ToGrpc(Invalid(absl::StrCat("the handle is for model ", handle.model_id(),
                                         "; this decode worker serves model ",
                                         serving::ModelIdHex(model_.id))));
    }
  }
  if (absl::Status s = serving::CheckPrompt(prompt, max_tokens, config); !s.ok()) {
    return ToGrpc(s);
  }
  auto mode =
      serving::ParseCacheConfig(colocated ? request->cache() : handle.cache(), config,
                                /*allow_fp32=*/colocated);
  if (!mode.ok()) return ToGrpc(mode.status());
  const int n = static_cast<int>(prompt.size());

  // ---- the handle names exactly the blocks of this prompt ----
  std::vector<kvstore::BlockKey> keys;
  if (!colocated) {
    if (store_ == nullptr) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "this decode worker runs without a KV store (colocated only)");
    }
    if (request->first_token() < 0 || request->first_token() >= config.vocab_size) {
      return ToGrpc(Invalid(absl::StrCat("first_token ", request->first_token(),
                                         " is outside the vocabulary [0, ",
                                         config.vocab_size, ")")));
    }
    const std::vector<kernels::BlockEncoding> plan = serving::BlockPlan(*mode, n);
    const std::vector<kvstore::BlockKey> expected =
        serving::PlanKeys(prompt, model_.id, plan);
    if (handle.blocks_size() != static_cast<int>(plan.size())) {
      return ToGrpc(
          Invalid(absl::StrCat("the handle names ", handle.blocks_size(), " blocks; a ",
                               n, "-token prompt has ", plan.size())));
    }
    for (int b = 0; b < handle.blocks_size(); ++b) {
      auto key = kvstore::BlockKey::FromBytes(handle.blocks(b).key());
      if (!key.ok() || *key != expected[b]) {
        return ToGrpc(Invalid(absl::StrCat(
            "handle block ", b, "'s key does not match the prompt's block chain for ",
            mode->ToString(), " (a foreign or corrupted handle)")));
      }
      keys.push_back(*key);
    }
  }

  // ---- reserve the cache's bytes at its final length ----
  const uint64_t need = serving::CacheBytes(*mode, shape, n + max_tokens);
  auto reservation = budget_.Reserve(need, [context] { return context->IsCancelled(); });
  if (!reservation.ok()) {
    if (context->IsCancelled()) ++cancelled_;
    return ToGrpc(reservation.status());
  }
  const absl::Time queued_until = absl::Now();
  (void)queued_until;

  // ---- the cache: fetched (handle) or computed here (colocated) ----
  std::unique_ptr<model::KvCache> cache;
  uint64_t fetched = 0;
  int first = request->first_token();
  if (colocated) {
    auto fresh = model::NewKvCache(*mode, shape);
    if (!fresh.ok()) return ToGrpc(fresh.status());
    auto logits = transformer_.Prefill(prompt, **fresh);
    if (!logits.ok()) return ToGrpc(logits.status());
    first = serving::SampleToken(*logits, *sampling, 0);
    cache = std::move(*fresh);
  } else {
    auto blocks = store_->GetBlocks(keys, absl::Now() + options_.store_timeout);
    if (!blocks.ok()) return ToGrpc(blocks.status());
    std::vector<model::BlockKvCache::ImportedBlock> imported;
    for (const kvstore::Block& b : *blocks) {
      imported.push_back({b.meta.encoding, b.meta.token_count, *b.bytes});
      fetched += b.bytes->size();
    }
    bytes_fetched_ += fetched;
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
    engine_.Add(seq);
    while (true) {
      seq->Next(&chunk, absl::Milliseconds(20));
      if (context->IsCancelled()) {
        seq->Cancel();
        ++cancelled_;
        return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled");
      }
      if (chunk.finished) break;
      if (!chunk.tokens.empty()) {
        out.mutable_tokens()->Add(chunk.tokens.begin(), chunk.tokens.end());
        if (!writer->Write(out)) {
          seq->Cancel();
          ++cancelled_;
          return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
        }
        out.Clear();
      }
    }
    if (!chunk.error.ok()) return ToGrpc(chunk.error);
    stats = seq->final_stats();
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

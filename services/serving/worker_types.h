// The serving edge's domain types: what a prefill or decode worker core
// takes and returns, with no gRPC or proto in them. The thin gRPC services
// (prefill_grpc_service, decode_grpc_service) and the router's worker
// clients convert the wire messages (proto/serving.proto) to and from these
// once, in services/serving/proto_convert.h.
//
//   PrefillRequest req{.tokens = {1, 403, 9}, .kv = "kivi2",
//                      .generation = {.max_tokens = 64}};
//   KVQ_ASSIGN_OR_RETURN(PrefillResult r, prefill_worker.Run(req, cancelled));
//   DecodeRequest d{.handle = r.handle, .first_token = r.first_token, ...};
#ifndef KVQ_SERVICES_SERVING_WORKER_TYPES_H_
#define KVQ_SERVICES_SERVING_WORKER_TYPES_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "kernels/block_format.h"
#include "kvstore/block_key.h"
#include "model/sampler.h"

namespace kvq::serving {

// How many tokens to generate and when to stop (design section 5).
struct GenerationParams {
  model::Sampling sampling;
  int max_tokens = 1;         // new tokens, counting the first; >= 1
  std::vector<int> stop_ids;  // the request's own stop tokens
  bool ignore_eos = false;    // else the model's BOS and EOS stop too
};

// The stop tokens of `params` for a model with these BOS and EOS ids.
std::vector<int> StopIds(const GenerationParams& params, int bos_id, int eos_id);

// One block of a handle: block i covers tokens [i*B, i*B + tokens).
struct HandleBlock {
  kvstore::BlockKey key;
  kernels::BlockEncoding encoding;
  int tokens = 0;
};

// A lease on one store shard, named by the shard's address.
struct HandleLease {
  std::string store;
  uint64_t lease_id = 0;
};

// What a prefill worker hands a decode worker: the prompt's committed
// blocks, no KV bytes.
struct KvHandle {
  uint64_t model_id = 0;
  std::vector<int> tokens;
  std::string kv;  // the mode's canonical text (model::KvMode::ToString)
  std::vector<HandleBlock> blocks;
  std::vector<HandleLease> leases;
  absl::Duration lease_ttl = absl::ZeroDuration();
};

struct PrefillRequest {
  std::vector<int> tokens;
  std::optional<uint64_t> model_id;  // expected model; none accepts the worker's
  std::string kv;                    // "" = the worker's default
  GenerationParams generation;
};

struct PrefillStats {
  int blocks_total = 0;
  int blocks_reused = 0;
  uint64_t tokens_computed = 0;
  uint64_t bytes_pushed = 0;
  uint64_t bytes_fetched = 0;
  uint64_t fp16_equivalent_bytes = 0;
  uint64_t stored_bytes = 0;
  double compute_seconds = 0;
  double seconds = 0;
  double transfer_exposed_seconds = 0;
  int layers = 0;
  int prefix_blocks_lost = 0;
  int blocks_reput = 0;
};

struct PrefillResult {
  KvHandle handle;
  int first_token = 0;
  PrefillStats stats;
};

// Disaggregated (a handle and the prefill's first token) or colocated (a
// prompt the decode worker runs itself, in cache mode `kv`).
struct DecodeRequest {
  std::optional<KvHandle> handle;
  int first_token = 0;      // with a handle
  std::vector<int> prompt;  // without one
  std::string kv;           // without one ("" = the worker's default)
  GenerationParams generation;
};

// A piece of a decode worker's output; the last one has `finished` set and
// the request's KV figures.
struct DecodeChunk {
  std::vector<int> tokens;
  bool finished = false;
  std::string finish_reason;  // "length", "stop"
  uint64_t bytes_fetched = 0;
  uint64_t fp16_equivalent_bytes = 0;
  uint64_t stored_bytes = 0;
};

// Receives a decode's output as it is produced; false = the client went
// away (the decode stops, CANCELLED).
using DecodeSink = std::function<bool(const DecodeChunk&)>;

// Polled by the cores between steps; true = stop (CANCELLED).
using CancelledFn = std::function<bool()>;

// 16 lowercase hex digits, the model id's text form (GetStats, logs).
std::string ModelIdHex(uint64_t model_id);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_WORKER_TYPES_H_

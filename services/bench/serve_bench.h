// The workloads of `kvq bench serve` (issue 6's benchmark):
//
// 1. Decode throughput at equal memory (DecodeThroughput): a launcher
//    cluster (store, prefill, decode, router as processes on loopback) whose
//    decode worker's KV budget is the fp16 bytes of `budget_sequences`
//    sequences of prompt + suffix + generated tokens. The store is warmed
//    with the caches of `prompts` prompts; then `requests` concurrent
//    requests, each one of those prompts plus its own suffix (so prefill
//    computes only the suffix), each generate `gen_tokens` tokens ignoring
//    EOS. Per KV mode: tokens/s, time to first token and inter-token latency.
// 2. Transfer overlap (TransferOverlap, overlap_bench.h).
//
//   ThroughputOptions o;   // the defaults
//   KVQ_ASSIGN_OR_RETURN(ThroughputRow fp16, DecodeThroughput(o, "fp16"));
#ifndef KVQ_SERVICES_BENCH_SERVE_BENCH_H_
#define KVQ_SERVICES_BENCH_SERVE_BENCH_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "model/model.h"

namespace kvq::bench {

// The model a bench runs: a --model value (a synthetic spec, a checkpoint or
// a model directory) and a tokenizer for the router ("" = found beside the
// model). For a synthetic spec without one, WriteBenchTokenizer makes one.
struct BenchModel {
  std::string model = "synthetic";
  std::string tokenizer;
  std::string weights = "fp32";  // --weights of the prefill and decode workers
  std::string kernel_variant;    // their --kernel_variant ("" = the CPU's best)
};

// The model's configuration without loading weights for a synthetic spec
// (the checkpoint is loaded otherwise).
absl::StatusOr<model::ModelConfig> BenchModelConfigOf(const std::string& model);

// Makes `m.tokenizer` usable by the router: for a synthetic spec without a
// tokenizer, writes a byte-level llama2.c one of the spec's vocabulary into
// `dir`. No-op otherwise.
absl::Status WriteBenchTokenizer(const std::string& dir, BenchModel* m);

// Nearest-rank percentile (p in [0, 100]) of `v`; 0 when empty.
double Percentile(std::vector<double> v, double p);
double Median(std::vector<double> v);

struct ThroughputOptions {
  BenchModel model;
  int prompts = 8;           // distinct shared prompts warmed into the store
  int prompt_tokens = 2048;  // tokens of each shared prompt
  int suffix_tokens = 32;    // each request's own tokens after its prompt
  int requests = 64;         // concurrent requests
  int gen_tokens = 128;      // tokens each request generates (EOS ignored)
  // Decode KV budget: the fp16 bytes of this many sequences of
  // prompt_tokens + suffix_tokens + gen_tokens tokens.
  int budget_sequences = 8;
  absl::Duration timeout = absl::Minutes(60);  // the whole measured phase
  bool verbose = false;                        // echo the services' output
};

struct ThroughputRow {
  std::string kv;  // the request's cache mode, e.g. "fp16", "kivi2"
  int requests = 0;
  int prompt_tokens = 0, suffix_tokens = 0, gen_tokens = 0;
  uint64_t kv_budget_bytes = 0;
  uint64_t sequence_bytes = 0;  // the decode worker's reservation per request
  int sequences_fit = 0;        // kv_budget_bytes / sequence_bytes
  uint64_t tokens = 0;          // generated, all requests
  double seconds = 0;           // first request sent to last one finished
  double tokens_per_s = 0;
  double ttft_p50_ms = 0, ttft_p99_ms = 0;
  double itl_p50_ms = 0, itl_p99_ms = 0;
  double mean_tokens_computed = 0;  // prefill tokens per request (reuse check)
  uint64_t requests_waited = 0;     // decode requests that waited for KV memory
  double mean_batch = 0;            // decode tokens per batch step
  double mean_step_ms = 0;          // seconds / steps (wall clock per step)
  double warm_seconds = 0;          // warming the store (not measured)
};

// Starts a cluster, warms the store and runs the measured phase for one KV
// mode (a --kv value). Every request must finish with all its tokens.
absl::StatusOr<ThroughputRow> DecodeThroughput(const ThroughputOptions& options,
                                               const std::string& kv);

// The prompt tokens the benches use: deterministic pseudo-random ids in
// [3, min(vocab, 512)) (valid for the byte-level tokenizer too), starting
// with BOS (1). Different `stream` values give different sequences.
std::vector<int> BenchTokens(int n, uint64_t stream, int vocab, bool with_bos);

}  // namespace kvq::bench

#endif  // KVQ_SERVICES_BENCH_SERVE_BENCH_H_

// The serving roles' Prometheus metrics (design section 6; the names and
// owners are the contract in deploy/metrics.txt). Every metric carries the
// labels `role` and `model`. One object per process, created on the
// process's registry (services/common/metrics.h MetricsEndpoint).
//
//   ServingMetrics m(endpoint->registry(), "prefill", "stories260K");
//   m.prefix_cache_queries->Increment(blocks);
//   m.kv_transfer_seconds->Observe(seconds);
#ifndef KVQ_SERVICES_SERVING_SERVING_METRICS_H_
#define KVQ_SERVICES_SERVING_SERVING_METRICS_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "services/common/metrics.h"

namespace kvq::serving {

class ServingMetrics {
 public:
  ServingMetrics(prometheus::Registry& registry, const std::string& role,
                 const std::string& model);

  // kvq_rpc_latency_seconds / kvq_rpc_errors_total{role, method, code}.
  void RecordRpc(absl::string_view method, absl::StatusCode code,
                 absl::Duration latency) {
    rpc_->Record(method, code, latency);
  }

  // Sets kvq_cache_config_info{kv_mode=...} to 1 (a mode this worker served).
  // The label comes from a closed set ("fp32", "fp16", "kivi2", "kivi4",
  // "kivi8"; anything else "other"), never from the client's text, so that
  // requests cannot grow the number of series.
  void NoteKvMode(const std::string& kv_mode);
  static bool IsKvModeLabel(const std::string& kv_mode);

  // Latency histograms (seconds).
  prometheus::Histogram* time_to_first_token;
  prometheus::Histogram* inter_token_latency;
  prometheus::Histogram* e2e_request_latency;
  prometheus::Histogram* request_queue_time;
  prometheus::Histogram* request_prefill_time;
  prometheus::Histogram* request_decode_time;
  prometheus::Histogram* kv_transfer_seconds;
  // Gauges.
  prometheus::Gauge* num_requests_running;
  prometheus::Gauge* num_requests_waiting;
  prometheus::Gauge* kv_cache_usage_perc;   // 0-1
  prometheus::Gauge* kv_compression_ratio;  // fp16 bytes over stored bytes
  // Counters.
  prometheus::Counter* prompt_tokens;
  prometheus::Counter* generation_tokens;
  prometheus::Counter* inter_token_stalls;
  prometheus::Counter* prefix_cache_queries;  // blocks
  prometheus::Counter* prefix_cache_hits;     // blocks
  prometheus::Counter* kv_transfer_bytes;
  prometheus::Histogram* kv_transfer_size;  // bytes per transfer

  // Counts one transfer of `bytes` (kv_transfer_bytes and kv_transfer_size).
  void RecordTransfer(size_t bytes) {
    kv_transfer_bytes->Increment(static_cast<double>(bytes));
    kv_transfer_size->Observe(static_cast<double>(bytes));
  }
  prometheus::Counter* kv_transfer_failures;
  prometheus::Counter* kv_blocks_quantized;
  // Robustness (blocks lost to eviction, and what was done about it).
  prometheus::Counter* prefix_blocks_lost;  // prefill: in Lookup, gone at fetch
  prometheus::Counter* kv_blocks_reput;     // prefill: evicted before the handle lease
  prometheus::Counter* kv_handle_misses;    // decode: handle blocks gone at fetch
  prometheus::Counter* reprefills;          // router: prefill re-run for that

 private:
  std::map<std::string, std::string> labels_;
  prometheus::Family<prometheus::Gauge>* config_info_;
  std::unique_ptr<services::RpcMetrics> rpc_;
  std::mutex mu_;
};

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_SERVING_METRICS_H_

#include "services/serving/serving_metrics.h"

namespace kvq::serving {
namespace {

// Seconds: 0.5 ms (one decode step of a small model) to 10 minutes (a long
// prompt queued behind others).
const prometheus::Histogram::BucketBoundaries& LatencyBuckets() {
  static const auto* b = new prometheus::Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
      1,      2.5,   5,      10,    30,   60,    120,  300, 600};
  return *b;
}

// Bytes: 1 KiB (one small fp16 block) to 16 GiB (a long prompt of a large
// model), a factor of 4 apart.
const prometheus::Histogram::BucketBoundaries& SizeBuckets() {
  static const auto* b = [] {
    auto* v = new prometheus::Histogram::BucketBoundaries;
    for (double x = 1024; x <= 16.0 * 1024 * 1024 * 1024; x *= 4) v->push_back(x);
    return v;
  }();
  return *b;
}

prometheus::Histogram* Hist(
    prometheus::Registry& r, const std::string& name, const std::string& help,
    const std::map<std::string, std::string>& labels,
    const prometheus::Histogram::BucketBoundaries& buckets = LatencyBuckets()) {
  return &prometheus::BuildHistogram().Name(name).Help(help).Register(r).Add(labels,
                                                                             buckets);
}
prometheus::Gauge* Gauge(prometheus::Registry& r, const std::string& name,
                         const std::string& help,
                         const std::map<std::string, std::string>& labels) {
  return &prometheus::BuildGauge().Name(name).Help(help).Register(r).Add(labels);
}
prometheus::Counter* Counter(prometheus::Registry& r, const std::string& name,
                             const std::string& help,
                             const std::map<std::string, std::string>& labels) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

}  // namespace

ServingMetrics::ServingMetrics(prometheus::Registry& r, const std::string& role,
                               const std::string& model)
    : labels_{{"role", role}, {"model", model}},
      rpc_(std::make_unique<services::RpcMetrics>(r, role)) {
  const auto& l = labels_;
  time_to_first_token = Hist(r, "kvq_time_to_first_token_seconds",
                             "Time from request arrival to the first token.", l);
  inter_token_latency = Hist(r, "kvq_inter_token_latency_seconds",
                             "Time between consecutive output tokens.", l);
  e2e_request_latency = Hist(r, "kvq_e2e_request_latency_seconds",
                             "Request latency, arrival to finish.", l);
  request_queue_time = Hist(r, "kvq_request_queue_time_seconds",
                            "Time a request waited for KV memory before decoding.", l);
  request_prefill_time =
      Hist(r, "kvq_request_prefill_time_seconds", "Prefill time of a request.", l);
  request_decode_time =
      Hist(r, "kvq_request_decode_time_seconds", "Decode time of a request.", l);
  kv_transfer_seconds =
      Hist(r, "kvq_kv_transfer_seconds",
           "Duration of one request's KV transfer to or from the store.", l);
  num_requests_running =
      Gauge(r, "kvq_num_requests_running", "Requests being prefilled or decoded.", l);
  num_requests_waiting =
      Gauge(r, "kvq_num_requests_waiting", "Requests waiting for KV memory.", l);
  kv_cache_usage_perc = Gauge(r, "kvq_kv_cache_usage_perc",
                              "Fraction (0-1) of the KV memory budget reserved.", l);
  kv_compression_ratio =
      Gauge(r, "kvq_kv_compression_ratio",
            "fp16 bytes over stored bytes of the last request's cache.", l);
  prompt_tokens = Counter(r, "kvq_prompt_tokens_total", "Prompt tokens prefilled.", l);
  generation_tokens =
      Counter(r, "kvq_generation_tokens_total", "Output tokens generated.", l);
  inter_token_stalls = Counter(r, "kvq_inter_token_stalls_total",
                               "Inter-token gaps over 10x the running median.", l);
  prefix_cache_queries = Counter(r, "kvq_prefix_cache_queries_total",
                                 "Blocks looked up in the store by prefill.", l);
  prefix_cache_hits = Counter(r, "kvq_prefix_cache_hits_total",
                              "Blocks the store already held (reused prefix).", l);
  kv_transfer_bytes = Counter(r, "kvq_kv_transfer_bytes_total",
                              "KV bytes moved to or from the store.", l);
  kv_transfer_size =
      Hist(r, "kvq_kv_transfer_size_bytes",
           "Bytes of one request's KV transfer to or from the store.", l, SizeBuckets());
  kv_transfer_failures =
      Counter(r, "kvq_kv_transfer_failures_total", "Failed KV transfers.", l);
  kv_blocks_quantized =
      Counter(r, "kvq_kv_blocks_quantized_total", "Blocks held quantized.", l);
  prefix_blocks_lost =
      Counter(r, "kvq_prefix_blocks_lost_total",
              "Prefix blocks the store held at Lookup but not at fetch (recomputed).", l);
  kv_blocks_reput = Counter(r, "kvq_kv_blocks_reput_total",
                            "Committed blocks evicted before prefill leased the "
                            "handle's blocks (put again).",
                            l);
  kv_handle_misses = Counter(r, "kvq_kv_handle_misses_total",
                             "Handles whose blocks the store no longer held when the "
                             "decode worker fetched them.",
                             l);
  reprefills = Counter(r, "kvq_reprefills_total",
                       "Prefills the router re-ran because the decode worker found "
                       "the handle's blocks evicted.",
                       l);
  config_info_ = &prometheus::BuildGauge()
                      .Name("kvq_cache_config_info")
                      .Help("1 for each kv mode this worker served.")
                      .Register(r);
}

bool ServingMetrics::IsKvModeLabel(const std::string& kv_mode) {
  return kv_mode == "fp32" || kv_mode == "fp16" || kv_mode == "kivi2" ||
         kv_mode == "kivi4" || kv_mode == "kivi8";
}

void ServingMetrics::NoteKvMode(const std::string& kv_mode) {
  std::map<std::string, std::string> l = labels_;
  l["kv_mode"] = IsKvModeLabel(kv_mode) ? kv_mode : "other";
  std::lock_guard<std::mutex> lock(mu_);
  config_info_->Add(l).Set(1);
}

}  // namespace kvq::serving

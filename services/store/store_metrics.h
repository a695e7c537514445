// The store's Prometheus metrics (design section 6), refreshed from the
// engine's statistics: kvq_kvstore_bytes, kvq_kvstore_capacity_bytes,
// kvq_kvstore_blocks, kvq_kvstore_leased_bytes (gauges),
// kvq_kvstore_evictions_total, kvq_kvstore_rejected_puts_total,
// kvq_kvstore_duplicate_puts_total, kvq_kvstore_hits_total,
// kvq_kvstore_misses_total (counters); all labelled role="store".
//
//   StoreMetrics metrics(endpoint->registry(), endpoint->labels());
//   metrics.Update(store->Stats());
#ifndef KVQ_SERVICES_STORE_STORE_METRICS_H_
#define KVQ_SERVICES_STORE_STORE_METRICS_H_

#include <map>
#include <mutex>
#include <string>

#include "kvstore/kv_store.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace kvq::store {

class StoreMetrics {
 public:
  StoreMetrics(prometheus::Registry& registry,
               const std::map<std::string, std::string>& labels);

  // Sets the gauges and advances the counters to `stats`. Thread-safe.
  void Update(const kvstore::StoreStats& stats);
  // Bytes of blocks PutBlocks streams are still receiving (not in stats).
  void SetAssemblingBytes(uint64_t bytes) {
    assembling_bytes_.Set(static_cast<double>(bytes));
  }

 private:
  prometheus::Gauge& bytes_;
  prometheus::Gauge& capacity_bytes_;
  prometheus::Gauge& blocks_;
  prometheus::Gauge& leased_bytes_;
  prometheus::Gauge& assembling_bytes_;
  prometheus::Counter& evictions_;
  prometheus::Counter& rejected_puts_;
  prometheus::Counter& duplicate_puts_;
  prometheus::Counter& hits_;
  prometheus::Counter& misses_;

  std::mutex mu_;
  kvstore::StoreStats last_;  // guarded by mu_: what the counters reflect
};

}  // namespace kvq::store

#endif  // KVQ_SERVICES_STORE_STORE_METRICS_H_

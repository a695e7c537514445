#include "services/store/store_metrics.h"

namespace kvq::store {
namespace {

prometheus::Gauge& Gauge(prometheus::Registry& r, const char* name, const char* help,
                         const std::map<std::string, std::string>& labels) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r).Add(labels);
}

prometheus::Counter& Counter(prometheus::Registry& r, const char* name, const char* help,
                             const std::map<std::string, std::string>& labels) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r).Add(labels);
}

void Advance(prometheus::Counter& c, uint64_t now, uint64_t before) {
  if (now > before) c.Increment(static_cast<double>(now - before));
}

}  // namespace

StoreMetrics::StoreMetrics(prometheus::Registry& r,
                           const std::map<std::string, std::string>& labels)
    : bytes_(Gauge(r, "kvq_kvstore_bytes", "Bytes of committed KV blocks held.", labels)),
      capacity_bytes_(Gauge(r, "kvq_kvstore_capacity_bytes",
                            "The store's capacity in bytes of block data.", labels)),
      blocks_(Gauge(r, "kvq_kvstore_blocks", "Committed KV blocks held.", labels)),
      leased_bytes_(Gauge(r, "kvq_kvstore_leased_bytes",
                          "Bytes of blocks pinned by live leases.", labels)),
      assembling_bytes_(Gauge(r, "kvq_kvstore_assembling_bytes",
                              "Bytes of blocks PutBlocks streams are still receiving "
                              "(held beyond kvq_kvstore_bytes).",
                              labels)),
      evictions_(Counter(r, "kvq_kvstore_evictions_total",
                         "Blocks evicted (LRU) to make room.", labels)),
      rejected_puts_(Counter(r, "kvq_kvstore_rejected_puts_total",
                             "Block puts refused: no room, bad checksum, bad metadata.",
                             labels)),
      duplicate_puts_(Counter(r, "kvq_kvstore_duplicate_puts_total",
                              "Puts of a key already present (first writer wins).",
                              labels)),
      hits_(Counter(r, "kvq_kvstore_hits_total", "GetBlocks keys found.", labels)),
      misses_(
          Counter(r, "kvq_kvstore_misses_total", "GetBlocks keys not found.", labels)) {}

void StoreMetrics::Update(const kvstore::StoreStats& s) {
  std::lock_guard<std::mutex> lock(mu_);
  bytes_.Set(static_cast<double>(s.bytes));
  capacity_bytes_.Set(static_cast<double>(s.capacity_bytes));
  blocks_.Set(static_cast<double>(s.blocks));
  leased_bytes_.Set(static_cast<double>(s.leased_bytes));
  Advance(evictions_, s.evictions, last_.evictions);
  Advance(rejected_puts_, s.rejected_puts, last_.rejected_puts);
  Advance(duplicate_puts_, s.duplicate_puts, last_.duplicate_puts);
  Advance(hits_, s.hits, last_.hits);
  Advance(misses_, s.misses, last_.misses);
  last_ = s;
}

}  // namespace kvq::store

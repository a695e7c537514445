// The decode worker's KV memory budget in bytes: a first-come-first-served
// byte semaphore. A sequence reserves the bytes its cache will hold at its
// final length before its blocks are fetched; requests that do not fit wait
// (and are counted); a release — finished, failed or cancelled — frees the
// bytes at once and admits waiters.
//
//   KvBudget budget(8 << 20);
//   KVQ_ASSIGN_OR_RETURN(KvBudget::Reservation r,
//                        budget.Reserve(bytes, [&] { return ctx->IsCancelled(); }));
//   ...                        // r releases its bytes when destroyed
#ifndef KVQ_SERVICES_DECODE_KV_BUDGET_H_
#define KVQ_SERVICES_DECODE_KV_BUDGET_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>

#include "absl/status/statusor.h"

namespace kvq::decode {

class KvBudget {
 public:
  struct Stats {
    uint64_t budget_bytes = 0;
    uint64_t used_bytes = 0;
    uint32_t holders = 0;  // live reservations
    uint32_t waiting = 0;
    uint64_t waited_total = 0;  // reservations that had to wait
  };

  // Moves own the bytes; destruction releases them.
  class Reservation {
   public:
    Reservation() = default;
    Reservation(Reservation&& o) noexcept : budget_(o.budget_), bytes_(o.bytes_) {
      o.budget_ = nullptr;
    }
    Reservation& operator=(Reservation&& o) noexcept;
    ~Reservation() { Release(); }
    uint64_t bytes() const { return bytes_; }
    void Release();

   private:
    friend class KvBudget;
    Reservation(KvBudget* b, uint64_t bytes) : budget_(b), bytes_(bytes) {}
    KvBudget* budget_ = nullptr;
    uint64_t bytes_ = 0;
  };

  explicit KvBudget(uint64_t budget_bytes) : budget_(budget_bytes) {}

  // Blocks until `bytes` fit (first come, first served) and returns them.
  // RESOURCE_EXHAUSTED if `bytes` exceeds the whole budget (it never could
  // fit); CANCELLED as soon as `cancelled()` returns true (polled) or
  // Shutdown() was called.
  absl::StatusOr<Reservation> Reserve(uint64_t bytes,
                                      const std::function<bool()>& cancelled);

  // Wakes every waiter with CANCELLED.
  void Shutdown();
  Stats stats() const;

 private:
  void Free(uint64_t bytes);

  const uint64_t budget_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t used_ = 0;           // guarded by mu_
  uint32_t holders_ = 0;        // guarded by mu_
  uint64_t next_ticket_ = 0;    // guarded by mu_
  std::deque<uint64_t> queue_;  // waiting tickets, guarded by mu_
  uint64_t waited_total_ = 0;   // guarded by mu_
  bool shutdown_ = false;       // guarded by mu_
};

}  // namespace kvq::decode

#endif  // KVQ_SERVICES_DECODE_KV_BUDGET_H_

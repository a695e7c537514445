#include "services/decode/kv_budget.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace kvq::decode {

KvBudget::Reservation& KvBudget::Reservation::operator=(Reservation&& o) noexcept {
  if (this != &o) {
    Release();
    budget_ = o.budget_;
    bytes_ = o.bytes_;
    o.budget_ = nullptr;
  }
  return *this;
}

void KvBudget::Reservation::Release() {
  if (budget_ != nullptr) budget_->Free(bytes_);
  budget_ = nullptr;
}

absl::StatusOr<KvBudget::Reservation> KvBudget::Reserve(
    uint64_t bytes, const std::function<bool()>& cancelled) {
  if (bytes > budget_) {
    return absl::ResourceExhaustedError(absl::StrCat("the sequence needs ", bytes,
                                                     " KV bytes, more than the decode "
                                                     "worker's whole budget of ",
                                                     budget_, " bytes"));
  }
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t ticket = next_ticket_++;
  queue_.push_back(ticket);
  bool waited = false;
  while (true) {
    if (shutdown_ || (cancelled && cancelled())) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), ticket));
      cv_.notify_all();
      return absl::CancelledError("cancelled while waiting for KV memory");
    }
    if (queue_.front() == ticket && used_ + bytes <= budget_) break;
    if (!waited) {
      waited = true;
      ++waited_total_;
    }
    cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
  queue_.pop_front();
  used_ += bytes;
  ++holders_;
  cv_.notify_all();
  return Reservation(this, bytes);
}

void KvBudget::Free(uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  used_ -= bytes;
  --holders_;
  cv_.notify_all();
}

void KvBudget::Shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

KvBudget::Stats KvBudget::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return {budget_, used_, holders_, static_cast<uint32_t>(queue_.size()), waited_total_};
}

}  // namespace kvq::decode

#include "kernels/cpu/internal/worker_pool.h"

namespace kvq::kernels::cpu_internal {

WorkerPool& WorkerPool::Get() {
  static WorkerPool* const pool = new WorkerPool();
  return *pool;
}

void WorkerPool::Drain() {
  for (int i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) (*fn_)(i);
}

void WorkerPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return generation_ != seen; });
    seen = generation_;
    if (index >= wanted_) continue;
    lock.unlock();
    Drain();
    lock.lock();
    if (--running_ == 0) done_cv_.notify_all();
  }
}

void WorkerPool::ParallelFor(int n, int threads, const std::function<void(int)>& fn) {
  if (n <= 0) return;
  const int helpers = std::min(threads, n) - 1;
  if (helpers <= 0) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::lock_guard<std::mutex> call(call_mu_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (static_cast<int>(workers_.size()) < helpers) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { WorkerLoop(index); });
      workers_.back().detach();
    }
    fn_ = &fn;
    n_ = n;
    next_.store(0);
    wanted_ = helpers;
    running_ = helpers;
    ++generation_;
  }
  work_cv_.notify_all();
  Drain();
  std::unique_lock<std::mutex> lock(mu_);
  done_cv_.wait(lock, [&] { return running_ == 0; });
  fn_ = nullptr;
}

}  // namespace kvq::kernels::cpu_internal

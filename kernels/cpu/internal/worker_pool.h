// A process-wide pool of worker threads for the CPU kernels' parallel loops.
// Workers block on a condition variable between calls (no spinning), so an
// oversubscribed machine loses no time slices to idle waiters; the calling
// thread works too. Concurrent ParallelFor calls run one after the other.
//
//   WorkerPool::Get().ParallelFor(n_items, n_threads, [&](int i) { Run(i); });
#ifndef KVQ_KERNELS_CPU_INTERNAL_WORKER_POOL_H_
#define KVQ_KERNELS_CPU_INTERNAL_WORKER_POOL_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace kvq::kernels::cpu_internal {

class WorkerPool {
 public:
  // The pool shared by every caller in the process (never destroyed).
  static WorkerPool& Get();

  // Runs fn(i) for every i in [0, n) on at most `threads` threads (the
  // caller and threads - 1 workers, started on first use), each index once,
  // handed out dynamically. Returns when all have finished.
  void ParallelFor(int n, int threads, const std::function<void(int)>& fn);

 private:
  WorkerPool() = default;
  void WorkerLoop(int index);
  void Drain();  // claims and runs indices of the current job

  std::mutex call_mu_;  // one ParallelFor at a time

  std::mutex mu_;
  std::condition_variable work_cv_;   // a new job (generation_ changed)
  std::condition_variable done_cv_;   // running_ reached 0
  std::vector<std::thread> workers_;  // guarded by mu_ (grows only)
  uint64_t generation_ = 0;           // guarded by mu_
  int wanted_ = 0;                    // workers that join the job; mu_
  int running_ = 0;                   // workers still in the job; mu_

  // The current job; written under mu_ before generation_ changes.
  const std::function<void(int)>* fn_ = nullptr;
  int n_ = 0;
  std::atomic<int> next_{0};
};

}  // namespace kvq::kernels::cpu_internal

#endif  // KVQ_KERNELS_CPU_INTERNAL_WORKER_POOL_H_

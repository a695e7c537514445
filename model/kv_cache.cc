#include "model/kv_cache.h"

#include <vector>

#include "kernels/kernels.h"

namespace kvq::model {
namespace {

// Multiply-adds (query . key over the batch) below which one thread is best.
constexpr double kMinWorkPerThread = 256.0 * 1024;

}  // namespace

absl::Status AttendBatch(int layer, absl::Span<KvCache* const> caches, const float* q,
                         float* out, int n_threads, kernels::ParallelForFn parallel_for) {
  if (caches.empty()) return absl::OkStatus();
  const KvCacheShape& shape = caches[0]->shape();
  const size_t stride = size_t(shape.n_heads) * shape.head_dim;
  std::vector<kernels::SequenceCache> views(caches.size());
  std::vector<kernels::AttentionTask> tasks;
  kernels::AttentionParams params;
  bool have_params = false;
  for (size_t i = 0; i < caches.size(); ++i) {
    kernels::AttentionParams p;
    const bool ok = caches[i]->KernelView(layer, &views[i], &p);
    if (ok && (!have_params || (p.quantized_encoding == params.quantized_encoding &&
                                p.block_tokens == params.block_tokens))) {
      params = p;
      have_params = true;
      tasks.push_back({q + i * stride, &views[i], out + i * stride});
      continue;
    }
    if (absl::Status s = caches[i]->Attend(layer, q + i * stride, out + i * stride);
        !s.ok()) {
      return s;
    }
  }
  if (tasks.empty()) return absl::OkStatus();
  // Threads pay off only on long contexts or big batches.
  double work = 0;
  for (const kernels::SequenceCache& v : views) work += v.n_tokens;
  work *= double(shape.n_heads) * shape.head_dim;
  params.n_threads = work >= kMinWorkPerThread ? n_threads : 1;
  params.parallel_for = parallel_for;
  return kernels::Best().decode_attention(params, tasks);
}

}  // namespace kvq::model

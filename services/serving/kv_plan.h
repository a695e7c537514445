// What a sequence's cache looks like as blocks (design sections 3.3 and 4):
// which encoding each block gets under the residual rule, the blocks' keys,
// and the bytes the cache takes. Prefill and decode workers use the same
// plan so that the keys a prefill pushes are the keys decode fetches.
//
//   std::vector<kernels::BlockEncoding> plan = BlockPlan(mode, n_tokens);
//   std::vector<kvstore::BlockKey> keys = PlanKeys(tokens, model_id, plan);
#ifndef KVQ_SERVICES_SERVING_KV_PLAN_H_
#define KVQ_SERVICES_SERVING_KV_PLAN_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"
#include "kernels/block_format.h"
#include "kvstore/block_key.h"
#include "model/kv_cache.h"
#include "model/kv_mode.h"

namespace kvq::serving {

// Encodings of the ceil(n/B) blocks of an n-token sequence held in `mode`
// (fp16 or kivi, resolved): block b is quantized iff kivi and
// n >= (b+1)*B + R; every other block, and the partial last one, is fp16.
std::vector<kernels::BlockEncoding> BlockPlan(const model::KvMode& mode, int n_tokens);

// The chained keys of `tokens` cut into blocks with the plan's encodings.
std::vector<kvstore::BlockKey> PlanKeys(absl::Span<const int> tokens, uint64_t model_id,
                                        absl::Span<const kernels::BlockEncoding> plan);

// Bytes of the blocks of an n-token cache in `mode` (whole blocks: a partial
// block takes a full one's room); fp32: 4 bytes per element.
uint64_t CacheBytes(const model::KvMode& mode, const model::KvCacheShape& shape,
                    int n_tokens);

// The same n tokens held as fp16, exactly (2 bytes per element): the
// denominator of the compression ratio (design 3.5).
uint64_t Fp16Bytes(const model::KvCacheShape& shape, int n_tokens);

}  // namespace kvq::serving

#endif  // KVQ_SERVICES_SERVING_KV_PLAN_H_

// Creates the KV cache a --kv mode names.
//
//   KVQ_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
//                        NewKvCache(mode, KvCacheShape::Of(model.config)));
#ifndef KVQ_MODEL_KV_CACHE_FACTORY_H_
#define KVQ_MODEL_KV_CACHE_FACTORY_H_

#include <memory>

#include "absl/status/statusor.h"
#include "model/kv_cache.h"
#include "model/kv_mode.h"

namespace kvq::model {

// fp32 -> Fp32KvCache; fp16, kivi -> BlockKvCache. INVALID_ARGUMENT when the
// mode does not fit the shape (e.g. G not dividing head_dim).
absl::StatusOr<std::unique_ptr<KvCache>> NewKvCache(const KvMode& mode,
                                                    const KvCacheShape& shape);

}  // namespace kvq::model

#endif  // KVQ_MODEL_KV_CACHE_FACTORY_H_

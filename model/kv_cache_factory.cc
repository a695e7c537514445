#include "model/kv_cache_factory.h"

#include "model/block_kv_cache.h"
#include "model/fp32_kv_cache.h"

namespace kvq::model {

absl::StatusOr<std::unique_ptr<KvCache>> NewKvCache(const KvMode& mode,
                                                    const KvCacheShape& shape) {
  if (mode.kind == KvMode::Kind::kFp32) {
    if (shape.n_layers < 1 || shape.n_kv_heads < 1 || shape.head_dim < 1 ||
        shape.n_heads < 1 || shape.n_heads % shape.n_kv_heads != 0) {
      return absl::InvalidArgumentError("KV cache: bad shape");
    }
    return std::unique_ptr<KvCache>(new Fp32KvCache(shape));
  }
  auto cache = BlockKvCache::Create(mode, shape);
  if (!cache.ok()) return cache.status();
  return std::unique_ptr<KvCache>(std::move(*cache));
}

}  // namespace kvq::model

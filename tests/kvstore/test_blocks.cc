#include "tests/kvstore/test_blocks.h"

#include <random>
#include <vector>

namespace kvq::kvstore::testing {

TestBlock MakeTestBlock(uint64_t seed, kernels::BlockEncoding encoding,
                        kernels::CacheShape shape) {
  TestBlock b;
  b.meta.encoding = encoding;
  b.meta.model_id = 0x5eed;
  b.meta.n_layers = shape.n_layers;
  b.meta.n_kv_heads = shape.n_kv_heads;
  b.meta.head_dim = shape.head_dim;
  b.meta.token_count = encoding.block_tokens;
  b.bytes.resize(b.meta.block_bytes());
  std::mt19937_64 rng(seed);
  for (char& c : b.bytes) c = static_cast<char>(rng());
  b.meta.checksum = BlockChecksum(b.bytes);
  const std::vector<int32_t> tokens = {static_cast<int32_t>(seed),
                                       static_cast<int32_t>(seed >> 32)};
  b.key = NextBlockKey(ChainSeed(), tokens, b.meta.model_id, encoding);
  return b;
}

}  // namespace kvq::kvstore::testing

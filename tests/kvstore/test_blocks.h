// Test helpers: valid blocks with deterministic pseudo-random bytes.
//
//   TestBlock b = MakeTestBlock(/*seed=*/7);
//   store->Put(b.key, b.meta, b.bytes);
#ifndef KVQ_TESTS_KVSTORE_TEST_BLOCKS_H_
#define KVQ_TESTS_KVSTORE_TEST_BLOCKS_H_

#include <cstdint>
#include <string>

#include "kernels/block_format.h"
#include "kvstore/block.h"
#include "kvstore/block_key.h"

namespace kvq::kvstore::testing {

struct TestBlock {
  BlockKey key;
  BlockMeta meta;
  std::string bytes;
};

// A 2-bit block (B = 32, G = 8) of the stories260K shape (5 layers, 4 KV
// heads, head_dim 8) unless `shape` says otherwise; bytes and key derive
// from `seed`, the checksum is correct.
TestBlock MakeTestBlock(
    uint64_t seed,
    kernels::BlockEncoding encoding = kernels::BlockEncoding::Quantized(2, 32, 8),
    kernels::CacheShape shape = {5, 4, 8});

}  // namespace kvq::kvstore::testing

#endif  // KVQ_TESTS_KVSTORE_TEST_BLOCKS_H_

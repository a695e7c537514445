// A separate client process for tests/integration/store_test.cc:
//
//   store_shard_client put ADDR1,ADDR2 FIRST COUNT
//   store_shard_client locate ADDR1,ADDR2 FIRST COUNT
//
// Builds test blocks FIRST..FIRST+COUNT-1 (tests/kvstore/test_blocks.h).
// `put` stores them through StoreClient; `locate` looks them up. Both print
// one line per block, "KEYHEX ADDRESS", naming the shard the client routes the
// key to, and `locate` ends with "present_prefix N".
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "services/store/client.h"
#include "tests/kvstore/test_blocks.h"

int main(int argc, char** argv) {
  using kvq::store::StoreClient;
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s put|locate ADDRS FIRST COUNT\n", argv[0]);
    return 2;
  }
  const std::string mode = argv[1];
  auto client = StoreClient::Create({.addresses = kvq::store::ParseAddressList(argv[2])});
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.status().ToString().c_str());
    return 1;
  }
  const int first = std::atoi(argv[3]), count = std::atoi(argv[4]);
  std::vector<kvq::kvstore::Block> blocks;
  std::vector<kvq::kvstore::BlockKey> keys;
  for (int i = first; i < first + count; ++i) {
    kvq::kvstore::testing::TestBlock t = kvq::kvstore::testing::MakeTestBlock(i);
    keys.push_back(t.key);
    blocks.push_back({t.key, t.meta, std::make_shared<const std::string>(t.bytes)});
  }
  if (mode == "put") {
    auto put = (*client)->PutBlocks(blocks);
    if (!put.ok()) {
      std::fprintf(stderr, "put: %s\n", put.status().ToString().c_str());
      return 1;
    }
  } else if (mode != "locate") {
    std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
    return 2;
  }
  for (const auto& key : keys) {
    std::printf("%s %s\n", key.ToHex().c_str(),
                (*client)->address((*client)->ShardOf(key)).c_str());
  }
  if (mode == "locate") {
    auto lookup = (*client)->Lookup(keys);
    if (!lookup.ok()) {
      std::fprintf(stderr, "lookup: %s\n", lookup.status().ToString().c_str());
      return 1;
    }
    std::printf("present_prefix %zu\n", lookup->present_prefix);
  }
  return 0;
}

// The store as its integration tests run it: `kvq serve store` as a child
// process on a free loopback port, and a client for it.
#ifndef KVQ_TESTS_INTEGRATION_STORE_PROCESS_H_
#define KVQ_TESTS_INTEGRATION_STORE_PROCESS_H_

#include <memory>
#include <string>
#include <vector>

#include "common/child_process.h"
#include "kvstore/block.h"
#include "services/store/client.h"
#include "tests/kvstore/test_blocks.h"

namespace kvq::store::integration {

// `kvq serve store --address=127.0.0.1:0 FLAGS...`, healthy; nullptr (and a
// test failure) when it does not start.
std::unique_ptr<ChildProcess> StartStore(std::vector<std::string> flags);

// A client of the store at `address` with a 10 s deadline.
std::unique_ptr<StoreClient> Connect(const std::string& address);

kvstore::Block ToBlock(const kvstore::testing::TestBlock& t);

}  // namespace kvq::store::integration

#endif  // KVQ_TESTS_INTEGRATION_STORE_PROCESS_H_

// The real KV store (engine + gRPC StoreService) on 127.0.0.1, port 0, in the
// test's own process: for unit tests of the store's clients and of the
// worker cores that talk to it. The integration tests run `kvq serve store`
// as a process instead.
//
//   InProcessStore store;  // listening once constructed
//   auto client = serving::WorkerStore::Connect(store.address(), absl::Seconds(5));
#ifndef KVQ_TESTS_SERVICES_STORE_IN_PROCESS_STORE_H_
#define KVQ_TESTS_SERVICES_STORE_IN_PROCESS_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"
#include "kvstore/kv_store.h"
#include "services/store/store_service.h"

namespace kvq::store::testing {

class InProcessStore {
 public:
  explicit InProcessStore(uint64_t capacity_bytes = 1 << 20) {
    engine_ = *kvstore::KvStore::Open({.capacity_bytes = capacity_bytes});
    service_ = std::make_unique<StoreService>(engine_.get(), StoreService::Options{},
                                              nullptr, nullptr);
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
  }
  ~InProcessStore() { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  kvstore::KvStore& engine() { return *engine_; }

 private:
  std::unique_ptr<kvstore::KvStore> engine_;
  std::unique_ptr<StoreService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

}  // namespace kvq::store::testing

#endif  // KVQ_TESTS_SERVICES_STORE_IN_PROCESS_STORE_H_

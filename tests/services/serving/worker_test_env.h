// What the worker-core tests share: the real test model (stories260K), its
// tokenizer and transformer, the real store service in process, and the
// workers' store client connected to it.
//
//   WorkerTestEnv env;                         // ASSERT_TRUE(env.ok())
//   PrefillWorker prefill(env.model(), env.transformer(), env.store(), nullptr, {});
#ifndef KVQ_TESTS_SERVICES_SERVING_WORKER_TEST_ENV_H_
#define KVQ_TESTS_SERVICES_SERVING_WORKER_TEST_ENV_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/paths.h"
#include "model/model_loader.h"
#include "model/transformer.h"
#include "services/serving/worker_store.h"
#include "tests/services/store/in_process_store.h"

namespace kvq::serving::testing {

class WorkerTestEnv {
 public:
  WorkerTestEnv() : store_server_(64 << 20) {
    auto loaded = model::LoadModel(DefaultModelDir());
    if (!loaded.ok()) return;
    loaded_ = std::move(*loaded);
    transformer_ = std::make_unique<model::Transformer>(*loaded_.model);
    auto client = WorkerStore::Connect(store_server_.address(), absl::Seconds(10));
    if (client.ok()) store_ = std::move(*client);
  }
  bool ok() const { return store_ != nullptr && loaded_.tokenizer != nullptr; }

  const model::Model& model() const { return *loaded_.model; }
  const model::Transformer& transformer() const { return *transformer_; }
  const model::Tokenizer& tokenizer() const { return *loaded_.tokenizer; }
  WorkerStore* store() { return store_.get(); }
  kvstore::KvStore& engine() { return store_server_.engine(); }
  std::vector<int> Encode(const std::string& text) const {
    return loaded_.tokenizer->Encode(text);
  }

 private:
  store::testing::InProcessStore store_server_;
  model::LoadedModel loaded_;
  std::unique_ptr<model::Transformer> transformer_;
  std::unique_ptr<WorkerStore> store_;
};

}  // namespace kvq::serving::testing

#endif  // KVQ_TESTS_SERVICES_SERVING_WORKER_TEST_ENV_H_

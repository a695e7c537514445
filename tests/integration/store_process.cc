#include "tests/integration/store_process.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "services/launcher/launcher.h"

namespace kvq::store::integration {

std::unique_ptr<ChildProcess> StartStore(std::vector<std::string> flags) {
  const std::string kvq = launcher::FindKvqBinary();
  EXPECT_FALSE(kvq.empty()) << "kvq binary not found";
  std::vector<std::string> argv = {kvq, "serve", "store", "--address=127.0.0.1:0"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  auto child = ChildProcess::Start("store", argv, {});
  EXPECT_TRUE(child.ok()) << child.status();
  return child.ok() ? std::move(*child) : nullptr;
}

std::unique_ptr<StoreClient> Connect(const std::string& address) {
  auto c = StoreClient::Create({.addresses = {address}, .deadline = absl::Seconds(10)});
  EXPECT_TRUE(c.ok());
  return std::move(*c);
}

kvstore::Block ToBlock(const kvstore::testing::TestBlock& t) {
  return {t.key, t.meta, std::make_shared<const std::string>(t.bytes)};
}

}  // namespace kvq::store::integration

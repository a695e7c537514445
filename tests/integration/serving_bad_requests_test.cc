// Bad requests get INVALID_ARGUMENT or NOT_FOUND with a message that says
// what is wrong, from the router and from the workers called directly.
#include <future>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/integration/serving_test_util.h"

namespace kvq::testing {
namespace {

using ::testing::HasSubstr;

class ServingBadRequestsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto c = launcher::Cluster::Start(TestClusterOptions());
    ASSERT_TRUE(c.ok()) << c.status();
    cluster_ = c->release();
  }
  static void TearDownTestSuite() { delete cluster_; }

  static grpc::Status Route(const v1::GenerateRequest& req) {
    return RouterGenerate(cluster_->router_address(), req).status;
  }

  // A real handle: the prompt prefilled and committed to the store.
  static v1::PrefillResponse RealHandle(const std::vector<int>& prompt) {
    v1::PrefillRequest req;
    req.mutable_tokens()->Add(prompt.begin(), prompt.end());
    req.mutable_cache()->set_kv("kivi:bits=2,residual=0");
    req.mutable_sampling()->set_max_tokens(8);
    v1::PrefillResponse resp;
    const grpc::Status s = Prefill(cluster_->prefill_addresses()[0], req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  static grpc::Status DecodeHandle(const v1::KvHandle& handle, int first_token) {
    auto stub = v1::Decode::NewStub(grpc::CreateChannel(
        cluster_->decode_addresses()[0], grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::DecodeRequest req;
    *req.mutable_handle() = handle;
    req.set_first_token(first_token);
    req.mutable_sampling()->set_max_tokens(8);
    auto reader = stub->Generate(&ctx, req);
    v1::DecodeResponse msg;
    while (reader->Read(&msg)) {
    }
    return reader->Finish();
  }

  static launcher::Cluster* cluster_;
};

launcher::Cluster* ServingBadRequestsTest::cluster_ = nullptr;

std::vector<int> ShortPrompt(int n, int salt) {
  std::vector<int> p = {1};
  for (int i = 1; i < n; ++i) p.push_back(259 + (i * 13 + salt) % 250);
  return p;
}

TEST_F(ServingBadRequestsTest, EmptyTokenPrompt) {
  grpc::Status s = Route(GreedyRequest({}, "kivi2", 8));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("empty"));
}

TEST_F(ServingBadRequestsTest, NoPromptAtAll) {
  v1::GenerateRequest req;
  req.mutable_sampling()->set_max_tokens(8);
  grpc::Status s = Route(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("neither text nor token ids"));
}

TEST_F(ServingBadRequestsTest, StepsOutOfRange) {
  grpc::Status zero = Route(GreedyRequest({1}, "kivi2", 0));
  EXPECT_EQ(zero.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(zero.error_message(), HasSubstr("max_tokens must be >= 1"));
  grpc::Status big = Route(GreedyRequest(ShortPrompt(100, 0), "kivi2", 500));
  EXPECT_EQ(big.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(big.error_message(), HasSubstr("seq_len of 512"));
}

TEST_F(ServingBadRequestsTest, TokenOutsideVocabulary) {
  grpc::Status s = Route(GreedyRequest({1, 600}, "kivi2", 8));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("600"));
}

TEST_F(ServingBadRequestsTest, UnknownKvMode) {
  grpc::Status s = Route(GreedyRequest({1, 300}, "kivi3", 8));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("cache.kv"));
  grpc::Status fp32 = Route(GreedyRequest({1, 300}, "fp32", 8));
  EXPECT_EQ(fp32.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(fp32.error_message(), HasSubstr("fp32"));
}

TEST_F(ServingBadRequestsTest, BadSampling) {
  v1::GenerateRequest req = GreedyRequest({1, 300}, "kivi2", 8);
  req.mutable_sampling()->set_temperature(-1);
  grpc::Status s = Route(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("temperature"));
}

TEST_F(ServingBadRequestsTest, UnknownModel) {
  v1::PrefillRequest req;
  req.add_tokens(1);
  req.mutable_model()->set_fingerprint(0x0123456789abcdef);
  req.mutable_sampling()->set_max_tokens(4);
  v1::PrefillResponse resp;
  grpc::Status s = Prefill(cluster_->prefill_addresses()[0], req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("unknown model 0123456789abcdef"));
}

TEST_F(ServingBadRequestsTest, HandleForAnotherModel) {
  v1::PrefillResponse real = RealHandle(ShortPrompt(40, 1));
  v1::KvHandle h = real.handle();
  h.mutable_model()->set_fingerprint(0x0123456789abcdef);
  grpc::Status s = DecodeHandle(h, real.first_token());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("handle is for model 0123456789abcdef"));
}

TEST_F(ServingBadRequestsTest, HandleWithForeignKey) {
  v1::PrefillResponse real = RealHandle(ShortPrompt(70, 2));
  v1::KvHandle h = real.handle();
  std::string key = h.blocks(1).key();
  key[3] ^= 0x5a;
  h.mutable_blocks(1)->set_key(key);
  grpc::Status s = DecodeHandle(h, real.first_token());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("block 1's key does not match"));
  // A real handle still works.
  EXPECT_TRUE(DecodeHandle(real.handle(), real.first_token()).ok());
}

TEST_F(ServingBadRequestsTest, HandleNamingMissingBlocks) {
  v1::PrefillResponse real = RealHandle(ShortPrompt(70, 3));
  // The blocks leave the store (as if their lease expired and they were
  // evicted): while the handle's lease holds them, Delete is refused.
  auto store = v1::KvStore::NewStub(
      grpc::CreateChannel(cluster_->store_address(), grpc::InsecureChannelCredentials()));
  v1::DeleteBlocksRequest del;
  for (const v1::BlockRef& b : real.handle().blocks()) del.add_keys(b.key());
  {
    grpc::ClientContext ctx;
    v1::DeleteBlocksResponse refused;
    ASSERT_TRUE(store->DeleteBlocks(&ctx, del, &refused).ok());
    ASSERT_GT(refused.codes_size(), 0);
    EXPECT_EQ(refused.codes(0), static_cast<int>(grpc::StatusCode::FAILED_PRECONDITION));
  }
  ASSERT_EQ(real.handle().leases_size(), 1);
  {
    grpc::ClientContext ctx;
    v1::ReleaseLeaseRequest release;
    release.set_lease_id(real.handle().leases(0).lease_id());
    v1::ReleaseLeaseResponse released;
    ASSERT_TRUE(store->ReleaseLease(&ctx, release, &released).ok());
  }
  grpc::ClientContext ctx;
  v1::DeleteBlocksResponse deleted;
  ASSERT_TRUE(store->DeleteBlocks(&ctx, del, &deleted).ok());
  for (int code : deleted.codes()) EXPECT_EQ(code, 0);
  grpc::Status s = DecodeHandle(real.handle(), real.first_token());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("does not hold block 0"));
}

// `bytes` sent as the request of `method` (no client-side serialization).
grpc::Status RawCall(const std::string& address, const std::string& method,
                     const std::string& bytes) {
  grpc::GenericStub stub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

TEST_F(ServingBadRequestsTest, GarbageAndInvalidUtf8AreInvalidArgument) {
  const std::string garbage = "\xff\xff\xff\xff";
  const std::string bad_utf8_text = "\x0a\x03\xff\xfe\xfd";  // text = 3 bad bytes
  struct Target {
    std::string address, method;
  };
  for (const Target& t :
       {Target{cluster_->router_address(), "/kvq.v1.Router/Generate"},
        Target{cluster_->prefill_addresses()[0], "/kvq.v1.Prefill/Prefill"},
        Target{cluster_->decode_addresses()[0], "/kvq.v1.Decode/Generate"},
        Target{cluster_->decode_addresses()[0], "/kvq.v1.Decode/GetStats"}}) {
    const grpc::Status s = RawCall(t.address, t.method, garbage);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << t.method;
    EXPECT_THAT(s.error_message(), HasSubstr("is not a valid kvq.v1.")) << t.method;
  }
  const grpc::Status s =
      RawCall(cluster_->router_address(), "/kvq.v1.Router/Generate", bad_utf8_text);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("UTF-8"));
}

TEST_F(ServingBadRequestsTest, AMultiMegabytePromptIsRefusedByTheRouter) {
  v1::GenerateRequest req;
  req.set_text(std::string(3 << 20, 'a'));
  req.mutable_sampling()->set_max_tokens(4);
  grpc::Status s = Route(req);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("cannot fit the model's context of 512"));
}

TEST_F(ServingBadRequestsTest, HandleWithWrongBlockCount) {
  v1::PrefillResponse real = RealHandle(ShortPrompt(70, 4));
  v1::KvHandle h = real.handle();
  h.mutable_blocks()->RemoveLast();
  grpc::Status s = DecodeHandle(h, real.first_token());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("70-token prompt has 3"));
}

}  // namespace
}  // namespace kvq::testing

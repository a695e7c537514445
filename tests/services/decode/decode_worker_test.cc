// The decode worker's core over the real test model and the real store
// service in process: requests are checked against the model and the
// handle's chain, a handle decodes exactly as the colocated path and as
// `kvq generate` (greedy and sampled: one sampler), a block swapped for one
// of another encoding under the handle's key is refused, and a cancelled or
// abandoned request stops and frees its budget.
#include "services/decode/decode_worker.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "model/generate.h"
#include "services/prefill/prefill_worker.h"
#include "tests/services/serving/worker_test_env.h"

namespace kvq::decode {
namespace {

using serving::DecodeChunk;
using serving::DecodeRequest;

class DecodeWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(env_.ok());
    prefill_ = std::make_unique<prefill::PrefillWorker>(env_.model(), env_.transformer(),
                                                        env_.store(), nullptr,
                                                        prefill::PrefillOptions{});
    DecodeOptions options;
    options.bos_id = env_.tokenizer().bos_id();
    options.eos_id = env_.tokenizer().eos_id();
    worker_ = std::make_unique<DecodeWorker>(env_.model(), env_.transformer(),
                                             env_.store(), nullptr, options);
  }

  std::vector<int> Prompt() const {
    std::vector<int> p =
        env_.Encode("Once upon a time, there was a little dog named Max.");
    p.resize(40, 300);  // one full block of 32 and a partial one
    return p;
  }

  serving::GenerationParams Generation(int max_tokens, model::Sampling sampling = {}) {
    serving::GenerationParams g;
    g.sampling = sampling;
    g.max_tokens = max_tokens;
    return g;
  }

  // The handle of a prefill of Prompt() in `kv`, and the decode request for it.
  DecodeRequest Disaggregated(const std::string& kv, const serving::GenerationParams& g) {
    serving::PrefillRequest p{Prompt(), std::nullopt, kv, g};
    auto prefilled = prefill_->Run(p, nullptr);
    EXPECT_TRUE(prefilled.ok()) << prefilled.status();
    DecodeRequest d;
    d.handle = prefilled->handle;
    d.first_token = prefilled->first_token;
    d.generation = g;
    return d;
  }

  // Runs the request; the tokens it streamed (first included) and its status.
  absl::Status Run(const DecodeRequest& request, std::vector<int>* tokens,
                   DecodeChunk* last = nullptr) {
    return worker_->Generate(
        request,
        [&](const DecodeChunk& c) {
          tokens->insert(tokens->end(), c.tokens.begin(), c.tokens.end());
          if (last != nullptr && c.finished) *last = c;
          return true;
        },
        nullptr);
  }

  // `kvq generate`'s tokens for Prompt().
  std::vector<int> Generated(const std::string& kv, int steps, model::Sampling sampling) {
    auto mode = model::ParseKvMode(kv);
    EXPECT_TRUE(mode.ok());
    auto out = model::Generate(env_.transformer(), Prompt(),
                               {.steps = steps,
                                .kv = *mode,
                                .sampling = sampling,
                                .bos_id = env_.tokenizer().bos_id(),
                                .eos_id = env_.tokenizer().eos_id()});
    EXPECT_TRUE(out.ok());
    return *out;
  }

  serving::testing::WorkerTestEnv env_;
  std::unique_ptr<prefill::PrefillWorker> prefill_;
  std::unique_ptr<DecodeWorker> worker_;
};

TEST_F(DecodeWorkerTest, CheckRefusesForeignHandles) {
  DecodeRequest good = Disaggregated("kivi2", Generation(8));
  ASSERT_TRUE(worker_->Check(good).ok());

  DecodeRequest other_model = good;
  other_model.handle->model_id ^= 1;
  EXPECT_TRUE(absl::StrContains(worker_->Check(other_model).status().message(),
                                "handle is for model"));
  DecodeRequest wrong_key = good;
  std::swap(wrong_key.handle->blocks[0].key, wrong_key.handle->blocks[1].key);
  EXPECT_TRUE(absl::StrContains(worker_->Check(wrong_key).status().message(),
                                "block 0's key does not match"));
  DecodeRequest extra_block = good;
  extra_block.handle->blocks.push_back(good.handle->blocks[0]);
  EXPECT_EQ(worker_->Check(extra_block).status().code(),
            absl::StatusCode::kInvalidArgument);
  DecodeRequest bad_first = good;
  bad_first.first_token = 100000;
  EXPECT_EQ(worker_->Check(bad_first).status().code(),
            absl::StatusCode::kInvalidArgument);

  DecodeWorker colocated_only(env_.model(), env_.transformer(), nullptr, nullptr, {});
  EXPECT_EQ(colocated_only.Check(good).status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(DecodeWorkerTest, HandleColocatedAndGenerateGiveTheSameTokens) {
  for (const model::Sampling sampling :
       {model::Sampling{},
        model::Sampling{.temperature = 0.8f, .top_p = 0.9f, .seed = 7}}) {
    const serving::GenerationParams g = Generation(24, sampling);
    // The handle path streams what follows the prefill worker's first token.
    const DecodeRequest d = Disaggregated("kivi:bits=2,residual=0", g);
    std::vector<int> disaggregated = {d.first_token}, colocated;
    ASSERT_TRUE(Run(d, &disaggregated).ok());
    DecodeRequest c;
    c.prompt = Prompt();
    c.kv = "kivi:bits=2,residual=0";
    c.generation = g;
    ASSERT_TRUE(Run(c, &colocated).ok());
    EXPECT_EQ(disaggregated, colocated) << "temperature " << sampling.temperature;
    EXPECT_EQ(colocated, Generated("kivi:bits=2,residual=0", 24, sampling))
        << "temperature " << sampling.temperature;
  }
}

TEST_F(DecodeWorkerTest, ABlockOfAnotherEncodingUnderTheHandlesKeyIsDataLoss) {
  // No handle lease (max_tokens 1 at prefill), so the block can be replaced.
  DecodeRequest d = Disaggregated("kivi:bits=2,residual=0", Generation(1));
  d.generation = Generation(8);
  ASSERT_FALSE(d.handle->blocks[0].encoding.is_fp16());
  const kvstore::BlockKey key = d.handle->blocks[0].key;
  ASSERT_TRUE(env_.engine().Delete({key})[0].ok());
  const model::KvCacheShape shape = model::KvCacheShape::Of(env_.model().config);
  kvstore::BlockMeta meta;
  meta.encoding = kernels::BlockEncoding::Fp16(32);
  meta.model_id = env_.model().id;
  meta.n_layers = shape.n_layers;
  meta.n_kv_heads = shape.n_kv_heads;
  meta.head_dim = shape.head_dim;
  meta.token_count = 32;
  std::string bytes(meta.block_bytes(), '\0');
  meta.checksum = kvstore::BlockChecksum(bytes);
  ASSERT_TRUE(env_.engine().Put(key, meta, bytes).ok());

  std::vector<int> tokens;
  const absl::Status s = Run(d, &tokens);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "does not match the handle")) << s;
  EXPECT_TRUE(tokens.empty());
  EXPECT_EQ(worker_->stats().budget.used_bytes, 0u);
}

TEST_F(DecodeWorkerTest, ABlockWithANaNIsDataLoss) {
  DecodeRequest d = Disaggregated("kivi:bits=2,residual=0", Generation(1));
  d.generation = Generation(8);
  ASSERT_EQ(d.handle->blocks.size(), 2u);
  const kvstore::BlockKey key = d.handle->blocks[1].key;  // the fp16 tail, 8 tokens
  kvstore::Block block = std::move(env_.engine().Get({key})[0].value());
  std::string bytes = *block.bytes;
  const uint16_t nan = 0x7e00;
  std::memcpy(bytes.data() + 2, &nan, 2);  // layer 0, KV head 0, a key
  ASSERT_TRUE(env_.engine().Delete({key})[0].ok());
  block.meta.checksum = kvstore::BlockChecksum(bytes);  // a valid checksum
  ASSERT_TRUE(env_.engine().Put(key, block.meta, bytes).ok());

  std::vector<int> tokens;
  const absl::Status s = Run(d, &tokens);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "NaN")) << s;
}

TEST_F(DecodeWorkerTest, CancelledAndAbandonedRequestsFreeTheirBudget) {
  DecodeRequest d = Disaggregated("kivi2", Generation(200));
  int calls = 0;
  const absl::Status cancelled = worker_->Generate(
      d, [](const DecodeChunk&) { return true; }, [&] { return ++calls > 3; });
  EXPECT_EQ(cancelled.code(), absl::StatusCode::kCancelled) << cancelled;

  DecodeRequest again = Disaggregated("kivi2", Generation(200));
  const absl::Status abandoned = worker_->Generate(
      again, [](const DecodeChunk&) { return false; }, nullptr);
  EXPECT_EQ(abandoned.code(), absl::StatusCode::kCancelled) << abandoned;
  EXPECT_EQ(worker_->stats().budget.used_bytes, 0u);
  EXPECT_EQ(worker_->stats().cancelled, 2u);
}

TEST_F(DecodeWorkerTest, TheLastChunkCarriesTheKvFigures) {
  std::vector<int> tokens;
  DecodeChunk last;
  ASSERT_TRUE(
      Run(Disaggregated("kivi:bits=2,residual=0", Generation(5)), &tokens, &last).ok());
  EXPECT_TRUE(last.finished);
  EXPECT_GT(last.bytes_fetched, 0u);
  EXPECT_GT(last.fp16_equivalent_bytes, last.stored_bytes);
  EXPECT_LE(tokens.size(), 4u);  // the first token came from the prefill
}

}  // namespace
}  // namespace kvq::decode

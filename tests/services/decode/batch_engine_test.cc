// The batch engine over the real test model: a batch of sequences decoded
// together gives each the tokens it gets alone; finishing and cancelling
// release the sequence's cache and budget.
#include "services/decode/batch_engine.h"

#include <memory>
#include <vector>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/kv_cache_factory.h"
#include "model/kv_mode.h"
#include "model/model_loader.h"
#include "model/transformer.h"

namespace kvq::decode {
namespace {

class BatchEngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = model::LoadModel(DefaultModelDir());
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    loaded_ = std::move(*loaded);
    transformer_ = std::make_unique<model::Transformer>(*loaded_.model);
  }

  // A sequence for `prompt` with its first token sampled greedily.
  std::shared_ptr<Sequence> Start(const std::vector<int>& prompt, int max_tokens,
                                  KvBudget* budget) {
    auto mode = model::ParseKvMode("kivi:bits=2,residual=0");
    auto cache = model::NewKvCache(*mode, model::KvCacheShape::Of(loaded_.model->config));
    EXPECT_TRUE(cache.ok());
    auto logits = transformer_->Prefill(prompt, **cache);
    EXPECT_TRUE(logits.ok());
    const int first = model::SampleToken(*logits, {}, 0);
    auto r = budget->Reserve(1000, nullptr);
    return std::make_shared<Sequence>(std::move(*cache), std::move(*r), first,
                                      SequenceParams{{}, max_tokens, {}});
  }

  static std::vector<int> Drain(Sequence& s, Sequence::Chunk* last) {
    std::vector<int> out;
    while (!last->finished) {
      s.Next(last, absl::Milliseconds(50));
      out.insert(out.end(), last->tokens.begin(), last->tokens.end());
    }
    return out;
  }

  model::LoadedModel loaded_;
  std::unique_ptr<model::Transformer> transformer_;
};

TEST_F(BatchEngineTest, BatchedEqualsAlone) {
  const std::vector<std::vector<int>> prompts = {
      {1, 403, 407, 261, 378}, {1, 300, 301, 302}, {1, 450, 451, 452, 453, 454, 455}};
  KvBudget budget(1 << 20);
  std::vector<std::vector<int>> alone;
  {
    BatchEngine engine(*transformer_, 1);
    for (const auto& p : prompts) {
      auto s = Start(p, 40, &budget);
      engine.Add(s);
      Sequence::Chunk last;
      alone.push_back(Drain(*s, &last));
      EXPECT_EQ(last.finish_reason, "length");
      EXPECT_EQ(alone.back().size(), 39u);  // the first token came from prefill
    }
  }
  BatchEngine engine(*transformer_, 8);
  std::vector<std::shared_ptr<Sequence>> seqs;
  for (const auto& p : prompts) seqs.push_back(Start(p, 40, &budget));
  for (auto& s : seqs) engine.Add(s);
  for (size_t i = 0; i < seqs.size(); ++i) {
    Sequence::Chunk last;
    EXPECT_EQ(Drain(*seqs[i], &last), alone[i]) << "sequence " << i;
  }
  EXPECT_EQ(budget.stats().used_bytes, 0u);  // every reservation released
}

TEST_F(BatchEngineTest, CancelReleasesMemory) {
  KvBudget budget(1 << 20);
  BatchEngine engine(*transformer_, 8, absl::Milliseconds(5));
  auto s = Start({1, 403, 407}, 400, &budget);
  EXPECT_EQ(budget.stats().used_bytes, 1000u);
  engine.Add(s);
  Sequence::Chunk c;
  s->Next(&c, absl::Seconds(1));
  s->Cancel();
  Sequence::Chunk last;
  Drain(*s, &last);
  EXPECT_EQ(last.finish_reason, "cancelled");
  EXPECT_EQ(budget.stats().used_bytes, 0u);
  EXPECT_EQ(engine.stats().cancelled, 1u);
}

TEST_F(BatchEngineTest, StopTokenEndsWithoutEmittingIt) {
  KvBudget budget(1 << 20);
  BatchEngine engine(*transformer_, 8);
  auto probe = Start({1, 403, 407, 261, 378}, 10, &budget);
  engine.Add(probe);
  Sequence::Chunk last;
  const std::vector<int> free_run = Drain(*probe, &last);
  ASSERT_GE(free_run.size(), 3u);
  // Stopping at the third generated token returns only the two before it.
  auto mode = model::ParseKvMode("kivi:bits=2,residual=0");
  auto cache = model::NewKvCache(*mode, model::KvCacheShape::Of(loaded_.model->config));
  auto logits = transformer_->Prefill(std::vector<int>{1, 403, 407, 261, 378}, **cache);
  auto r = budget.Reserve(1000, nullptr);
  auto s = std::make_shared<Sequence>(std::move(*cache), std::move(*r),
                                      model::SampleToken(*logits, {}, 0),
                                      SequenceParams{{}, 10, {free_run[2]}});
  engine.Add(s);
  Sequence::Chunk end;
  EXPECT_EQ(Drain(*s, &end), std::vector<int>(free_run.begin(), free_run.begin() + 2));
  EXPECT_EQ(end.finish_reason, "stop");
}

}  // namespace
}  // namespace kvq::decode

#include "model/transformer.h"

#include <cmath>
#include <string>
#include <vector>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/block_kv_cache.h"
#include "model/generate.h"
#include "model/internal/read_file.h"
#include "model/kv_cache_factory.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

using ::kvq::model::testing::RandomModel;
using ::kvq::model::testing::SmallConfig;
using ::kvq::model::testing::Stories260K;

KvMode Mode(const std::string& s) {
  absl::StatusOr<KvMode> m = ParseKvMode(s);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

std::unique_ptr<KvCache> NewCache(const Model& m, const std::string& mode) {
  absl::StatusOr<std::unique_ptr<KvCache>> c =
      NewKvCache(Mode(mode), KvCacheShape::Of(m.config));
  EXPECT_TRUE(c.ok()) << c.status();
  return std::move(*c);
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

TEST(TransformerTest, GreedyFromEmptyPromptMatchesLlama2c) {
  const LoadedModel& m = Stories260K();
  absl::StatusOr<std::string> want =
      model_internal::ReadFile(DefaultModelDir() + "/greedy_empty_200.txt");
  ASSERT_TRUE(want.ok()) << want.status();
  Transformer t(*m.model);
  for (const char* mode : {"fp16", "fp32"}) {
    const std::vector<int> prompt = m.tokenizer->Encode("");
    absl::StatusOr<std::vector<int>> out =
        Generate(t, prompt, {.steps = 200, .kv = Mode(mode)});
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(out->size(), 200u);
    std::vector<int> all = prompt;
    all.insert(all.end(), out->begin(), out->end());
    absl::StatusOr<std::string> text = m.tokenizer->Decode(all);
    ASSERT_TRUE(text.ok());
    EXPECT_EQ(*text + "\n", *want) << mode;
  }
}

// Prefill of a prompt then decode gives the logits of feeding the prompt one
// token at a time (fp16: within fp16 rounding of the in-prompt K/V).
TEST(TransformerTest, PrefillThenDecodeMatchesTokenByToken) {
  const LoadedModel& m = Stories260K();
  Transformer t(*m.model);
  const std::vector<int> prompt = m.tokenizer->Encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside "
      "in the park with her friends every day.");
  ASSERT_GT(prompt.size(), 33u);  // spans a full block and a partial one
  for (auto [mode, tol] : {std::pair{"fp32", 1e-4f}, std::pair{"fp16", 2e-2f}}) {
    auto prefilled = NewCache(*m.model, mode);
    auto stepped = NewCache(*m.model, mode);
    absl::StatusOr<std::vector<float>> a = t.Prefill(prompt, *prefilled);
    ASSERT_TRUE(a.ok()) << a.status();
    std::vector<float> b;
    for (int id : prompt) {
      absl::StatusOr<std::vector<float>> l = t.Decode(id, *stepped);
      ASSERT_TRUE(l.ok()) << l.status();
      b = *l;
    }
    EXPECT_LT(MaxAbsDiff(*a, b), tol) << mode;
    EXPECT_EQ(prefilled->n_tokens(), static_cast<int>(prompt.size()));
    for (int id : {300, 301, 302, 303}) {
      a = t.Decode(id, *prefilled);
      absl::StatusOr<std::vector<float>> l = t.Decode(id, *stepped);
      ASSERT_TRUE(a.ok() && l.ok());
      EXPECT_LT(MaxAbsDiff(*a, *l), tol) << mode;
    }
  }
}

TEST(TransformerTest, PrefillAttendsToCachedPrefix) {
  const Model m = RandomModel(SmallConfig(), 3);
  Transformer t(m);
  std::vector<int> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 7 + 1) % 64);
  auto whole = NewCache(m, "fp32");
  auto split = NewCache(m, "fp32");
  absl::StatusOr<std::vector<float>> a = t.Prefill(tokens, *whole);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(t.Prefill(absl::MakeSpan(tokens).subspan(0, 25), *split).ok());
  absl::StatusOr<std::vector<float>> b =
      t.Prefill(absl::MakeSpan(tokens).subspan(25), *split);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_LT(MaxAbsDiff(*a, *b), 1e-4f);
  // A quantized prefix is attended as stored: the same as decoding over it.
  auto kivi = NewCache(m, "kivi:bits=2,block=8,group=8,residual=0");
  ASSERT_TRUE(t.Prefill(absl::MakeSpan(tokens).subspan(0, 32), *kivi).ok());
  auto clone = static_cast<BlockKvCache&>(*kivi).Clone();
  absl::StatusOr<std::vector<float>> c = t.Prefill({&tokens[32], 1}, *kivi);
  absl::StatusOr<std::vector<float>> d = t.Decode(tokens[32], *clone);
  ASSERT_TRUE(c.ok() && d.ok());
  EXPECT_LT(MaxAbsDiff(*c, *d), 1e-3f);
}

TEST(TransformerTest, PrefillReportsEachLayer) {
  const Model m = RandomModel(SmallConfig(), 3);
  Transformer t(m);
  auto cache = NewCache(m, "kivi:bits=4,block=8,group=8,residual=8");
  std::vector<int> layers;
  PrefillOptions opts;
  const auto& blocks = static_cast<const BlockKvCache&>(*cache);
  opts.on_layer = [&](int l) {
    layers.push_back(l);
    EXPECT_EQ(cache->layer_tokens(l), 20);
    EXPECT_EQ(blocks.layer_blocks(l), 3);
    EXPECT_FALSE(blocks.layer_block_encoding(0, l).is_fp16());
    EXPECT_TRUE(blocks.layer_block_encoding(1, l).is_fp16());
    EXPECT_EQ(blocks.layer_block_tokens(2, l), 4);
    return absl::OkStatus();
  };
  std::vector<int> tokens(20, 5);
  ASSERT_TRUE(t.Prefill(tokens, *cache, opts).ok());
  EXPECT_EQ(layers, (std::vector<int>{0, 1}));
  ASSERT_EQ(blocks.n_blocks(), 3);
  EXPECT_FALSE(blocks.block_encoding(0).is_fp16());  // 20 >= 8 + 8
  EXPECT_TRUE(blocks.block_encoding(1).is_fp16());   // 20 < 16 + 8
  EXPECT_EQ(blocks.block_tokens(2), 4);
}

TEST(TransformerTest, BatchedDecodeMatchesSingleSequences) {
  const Model m = RandomModel(SmallConfig(), 5);
  Transformer t(m);
  for (const char* mode : {"fp16", "kivi:bits=2,block=8,group=4,residual=8", "fp32"}) {
    std::vector<std::unique_ptr<KvCache>> batch, single;
    for (int len : {3, 17, 30}) {
      for (auto* v : {&batch, &single}) {
        v->push_back(NewCache(m, mode));
        std::vector<int> prompt(len);
        for (int i = 0; i < len; ++i) prompt[i] = (i * 5 + len) % 64;
        ASSERT_TRUE(t.Prefill(prompt, *v->back()).ok());
      }
    }
    std::vector<KvCache*> ptrs = {batch[0].get(), batch[1].get(), batch[2].get()};
    for (int step = 0; step < 12; ++step) {
      const std::vector<int> ids = {step % 64, (step * 3) % 64, 63 - step};
      std::vector<float> logits;
      ASSERT_TRUE(t.DecodeStep(ids, absl::MakeSpan(ptrs), &logits).ok());
      for (int i = 0; i < 3; ++i) {
        absl::StatusOr<std::vector<float>> one = t.Decode(ids[i], *single[i]);
        ASSERT_TRUE(one.ok()) << one.status();
        std::vector<float> row(logits.begin() + i * 64, logits.begin() + (i + 1) * 64);
        // The matrix products and the attention (fp16, fp32 and KIVI; this
        // model's G = 4 leaves quantized blocks to the reference kernel) are
        // batch invariant: bit-identical.
        EXPECT_EQ(row, *one) << mode << " step " << step;
      }
    }
  }
}

TEST(TransformerTest, ReleasedRawWeightsGiveTheSameLogits) {
  for (bool shared : {true, false}) {
    ModelConfig c = SmallConfig();
    c.shared_classifier = shared;
    const Model whole = RandomModel(c, 9);
    Model released = whole;
    const Transformer keep(whole);
    const Transformer packed_only(released, RawWeights::kRelease);
    EXPECT_TRUE(released.weights.layers[1].w2.empty());
    EXPECT_TRUE(released.weights.classifier.empty());
    EXPECT_EQ(released.weights.token_embedding.empty(), shared);
    EXPECT_EQ(released.weights.layers[1].rms_ffn, whole.weights.layers[1].rms_ffn);
    EXPECT_EQ(released.id, whole.id);
    auto a = NewCache(whole, "fp16"), b = NewCache(whole, "fp16");
    const std::vector<int> prompt = {1, 7, 63, 0, 12};
    absl::StatusOr<std::vector<float>> la = keep.Prefill(prompt, *a);
    absl::StatusOr<std::vector<float>> lb = packed_only.Prefill(prompt, *b);
    ASSERT_TRUE(la.ok() && lb.ok());
    EXPECT_EQ(*la, *lb) << "shared " << shared;
    la = keep.Decode(5, *a);
    lb = packed_only.Decode(5, *b);
    ASSERT_TRUE(la.ok() && lb.ok());
    EXPECT_EQ(*la, *lb) << "shared " << shared;
  }
}

TEST(TransformerTest, RejectsBadInput) {
  const Model m = RandomModel(SmallConfig(), 5);
  Transformer t(m);
  auto cache = NewCache(m, "fp16");
  EXPECT_EQ(t.Prefill({}, *cache).status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int> bad = {1, 64};
  EXPECT_EQ(t.Prefill(bad, *cache).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(t.Decode(-1, *cache).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->n_tokens(), 0);
  const std::vector<int> too_long(129, 1);
  EXPECT_EQ(t.Prefill(too_long, *cache).status().code(),
            absl::StatusCode::kInvalidArgument);
  ModelConfig other = SmallConfig();
  other.n_kv_heads = 4;
  auto wrong = NewCache(RandomModel(other, 1), "fp16");
  EXPECT_EQ(t.Decode(1, *wrong).status().code(), absl::StatusCode::kInvalidArgument);
  std::vector<float> logits;
  KvCache* two[] = {cache.get(), cache.get()};
  EXPECT_EQ(t.DecodeStep({1}, two, &logits).code(), absl::StatusCode::kInvalidArgument);
  const std::vector<int> pair = {1, 2};
  EXPECT_EQ(t.DecodeStep(pair, two, &logits).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(cache->n_tokens(), 0);
}

}  // namespace
}  // namespace kvq::model

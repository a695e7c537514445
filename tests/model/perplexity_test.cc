#include "model/perplexity.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/internal/read_file.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

// Design section 8: stories260K on stories_dev.txt, 847 predicted tokens.
TEST(PerplexityTest, ReproducesTheDesignTable) {
  const LoadedModel& m = testing::Stories260K();
  absl::StatusOr<std::string> text =
      model_internal::ReadFile(SharedDir() + "/data/stories_dev.txt");
  ASSERT_TRUE(text.ok()) << text.status();
  Transformer t(*m.model);
  const std::pair<const char*, double> table[] = {
      {"fp32", 3.5049},
      {"fp16", 3.5048},
      {"kivi:bits=8,block=32,group=8,residual=0", 3.5046},
      {"kivi:bits=4,block=32,group=8,residual=0", 3.5314},
      {"kivi:bits=2,block=32,group=8,residual=0", 4.1547},
      {"kivi:bits=2,block=32,group=8,residual=32", 3.6636},
      {"kivi:bits=2,block=32,group=8,residual=64", 3.5611},
      {"kivi:bits=2,block=16,group=8,residual=0", 3.9609},
  };
  for (const auto& [mode_text, want] : table) {
    absl::StatusOr<KvMode> mode = ParseKvMode(mode_text);
    ASSERT_TRUE(mode.ok());
    absl::StatusOr<PerplexityResult> r =
        EvaluatePerplexity(t, *m.tokenizer, *text, *mode);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->tokens, 847) << mode_text;
    EXPECT_NEAR(r->ppl, want, want * 1e-3) << mode_text;
    EXPECT_NEAR(r->ppl, std::exp(r->mean_nll), 1e-12);
    if (mode->kind == KvMode::Kind::kKivi) {
      EXPECT_LT(r->cache.BitsPerElement(), 16.0) << mode_text;
    }
  }
}

TEST(PerplexityTest, RejectsTextWithNothingToPredict) {
  const LoadedModel& m = testing::Stories260K();
  Transformer t(*m.model);
  absl::StatusOr<KvMode> mode = ParseKvMode("fp16");
  for (const char* text : {"", "\n\n\n"}) {
    EXPECT_EQ(EvaluatePerplexity(t, *m.tokenizer, text, *mode).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

// Format 2 (issue 15). Sinks: the independent experiment (first 32
// tokens fp16, kivi2 B32 G8 R0) gave 4.0281. The other rows are kvq's own
// measurements (docs/performance.md), pinned so that a change to the
// quantizer, the outlier rule or the u8 scales shows; effective bits are
// the lines' final caches, model::EffectiveBits over their lengths.
TEST(PerplexityTest, Format2Modes) {
  const LoadedModel& m = testing::Stories260K();
  absl::StatusOr<std::string> text =
      model_internal::ReadFile(SharedDir() + "/data/stories_dev.txt");
  ASSERT_TRUE(text.ok()) << text.status();
  Transformer t(*m.model);
  const struct {
    const char* kv;
    double ppl, bits;
  } table[] = {
      {"kivi:bits=2,block=32,group=8,residual=0,sinks=32", 4.0281, 7.311},
      {"kivi:bits=2,block=32,group=8,residual=0,outliers=0.02", 3.8295, 5.998},
      {"kivi:bits=2,block=16,group=8,residual=0,scales=u8", 3.9782, 4.319},
      {"kivi:kbits=4,vbits=2,block=16,group=8,residual=0,scales=u8", 3.5117, 5.282},
  };
  for (const auto& row : table) {
    absl::StatusOr<KvMode> mode = ParseKvMode(row.kv);
    ASSERT_TRUE(mode.ok());
    absl::StatusOr<PerplexityResult> r =
        EvaluatePerplexity(t, *m.tokenizer, *text, *mode);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_NEAR(r->ppl, row.ppl, row.ppl * 1e-3) << row.kv;
    EXPECT_NEAR(r->cache.BitsPerElement(), row.bits, 1e-3) << row.kv;
    // The same figure from the format alone: each line's cache holds its
    // length - 1 tokens at the end (the last token is never fed).
    std::vector<int> held;
    for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
      const int n =
          std::min<int>(m.tokenizer->Encode(line).size(), m.model->config.seq_len);
      held.push_back(n - 1);
    }
    const KvMode resolved = *mode->Resolve(m.model->config.HeadDim());
    const KvCacheShape shape = KvCacheShape::Of(m.model->config);
    EXPECT_NEAR(
        EffectiveBits(resolved, {shape.n_layers, shape.n_kv_heads, shape.head_dim}, held),
        r->cache.BitsPerElement(), 1e-9)
        << row.kv;
  }
}

}  // namespace
}  // namespace kvq::model

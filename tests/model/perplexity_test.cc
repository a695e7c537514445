#include "model/perplexity.h"

#include <cmath>

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

}  // namespace
}  // namespace kvq::model

// Issue 3: `kvq eval ppl` gives the same perplexity, within 0.05%, whichever
// kernel variant runs the attention (and, for quantized caches, the
// quantization): stories260K on stories_dev.txt with the reference and with
// every variant this CPU supports (kernels::Available()), on an fp16 cache,
// a 2-bit cache and a 2-bit cache with an fp16 residual window.
#include <cmath>
#include <string>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "kernels/kernels.h"
#include "model/internal/read_file.h"
#include "model/perplexity.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

constexpr double kMaxRelativeDifference = 5e-4;  // 0.05%

double Perplexity(const Transformer& t, const Tokenizer& tokenizer,
                  const std::string& text, const KvMode& mode,
                  const kernels::KernelSet& set) {
  kernels::ScopedKernelsOverride use(set);
  EXPECT_EQ(&kernels::Best(), &set);
  absl::StatusOr<PerplexityResult> r = EvaluatePerplexity(t, tokenizer, text, mode);
  EXPECT_TRUE(r.ok()) << set.name << ": " << r.status();
  return r.ok() ? r->ppl : NAN;
}

TEST(PerplexityVariantsTest, EveryVariantAgreesWithTheReference) {
  const LoadedModel& m = testing::Stories260K();
  absl::StatusOr<std::string> text =
      model_internal::ReadFile(SharedDir() + "/data/stories_dev.txt");
  ASSERT_TRUE(text.ok()) << text.status();
  Transformer t(*m.model);
  const std::vector<const kernels::KernelSet*> sets = kernels::Available();
  ASSERT_EQ(sets.front(), &kernels::Reference());
  if (sets.size() == 1) {
    GTEST_SKIP() << "only the reference kernels run on this CPU; nothing to compare";
  }
  for (const char* mode_text : {"fp16", "kivi:bits=2,block=32,group=8,residual=0",
                                "kivi:bits=2,block=32,group=8,residual=32"}) {
    absl::StatusOr<KvMode> mode = ParseKvMode(mode_text);
    ASSERT_TRUE(mode.ok()) << mode.status();
    const double want = Perplexity(t, *m.tokenizer, *text, *mode, kernels::Reference());
    ASSERT_TRUE(std::isfinite(want)) << mode_text;
    for (size_t i = 1; i < sets.size(); ++i) {
      const double got = Perplexity(t, *m.tokenizer, *text, *mode, *sets[i]);
      EXPECT_LE(std::fabs(got - want), kMaxRelativeDifference * want)
          << mode_text << ", variant " << sets[i]->name << ": ppl " << got
          << ", reference " << want;
    }
  }
  // The override is gone: Best() chooses again.
  EXPECT_NE(&kernels::Best(), nullptr);
}

}  // namespace
}  // namespace kvq::model

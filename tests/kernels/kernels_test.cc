// The dispatcher: Available(), Best(), Reference(), FindKernels().
#include "kernels/kernels.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "kernels/reference.h"

namespace kvq::kernels {
namespace {

TEST(KernelsTest, ReferenceComesFirst) {
  const std::vector<const KernelSet*> sets = Available();
  ASSERT_FALSE(sets.empty());
  EXPECT_EQ(sets.front(), &Reference());
  EXPECT_EQ(&Reference(), &reference::Kernels());
  EXPECT_EQ(Reference().name, "reference");
}

TEST(KernelsTest, EveryVariantIsCompleteAndNamedOnce) {
  std::set<std::string> names;
  for (const KernelSet* set : Available()) {
    EXPECT_TRUE(names.insert(set->name).second) << set->name;
    EXPECT_NE(set->quantize_layer, nullptr) << set->name;
    EXPECT_NE(set->quantize_layer_fp16, nullptr) << set->name;
    EXPECT_NE(set->decode_attention, nullptr) << set->name;
    EXPECT_EQ(FindKernels(set->name), set);
  }
}

TEST(KernelsTest, BestIsTheLastAvailable) {
  // No KVQ_KERNELS in this test's environment.
  ASSERT_EQ(std::getenv("KVQ_KERNELS"), nullptr);
  EXPECT_EQ(&Best(), Available().back());
  EXPECT_EQ(&Best(), &Best());
}

TEST(KernelsTest, FindKernelsRejectsUnknownNames) {
  EXPECT_EQ(FindKernels("no-such-variant"), nullptr);
  EXPECT_EQ(FindKernels(""), nullptr);
}

}  // namespace
}  // namespace kvq::kernels

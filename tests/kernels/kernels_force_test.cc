// ForceKernels (what `--kernel_variant` calls) and CpuModelName. A separate
// binary: forcing a variant is process-wide.
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/kernels.h"

namespace kvq::kernels {
namespace {

TEST(KernelsForceTest, CpuModelNameIsNamed) {
  const std::string name = CpuModelName();
  EXPECT_FALSE(name.empty());
  std::printf("CPU: %s\n", name.c_str());
}

TEST(KernelsForceTest, UnknownNameIsInvalidArgumentListingVariants) {
  const absl::Status st = ForceKernels("no-such-variant");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  for (const std::string& name : VariantNames()) {
    EXPECT_NE(st.message().find(name), absl::string_view::npos) << st;
  }
  EXPECT_EQ(&Best(), Available().back());  // nothing changed
}

TEST(KernelsForceTest, UnsupportedVariantIsFailedPreconditionNamingFeatures) {
  std::vector<std::string> unsupported;
  for (const std::string& name : VariantNames()) {
    if (FindKernels(name) == nullptr) unsupported.push_back(name);
  }
  if (unsupported.empty()) {
    GTEST_SKIP() << "this CPU (" << CpuModelName()
                 << ") runs every variant; the unsupported-variant error is not "
                    "exercised here";
  }
  const absl::Status st = ForceKernels(unsupported.front());
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("lacks"), absl::string_view::npos) << st;
  EXPECT_NE(st.message().find("reference"), absl::string_view::npos) << st;
}

TEST(KernelsForceTest, ForcedVariantIsBest) {
  for (const KernelSet* set : Available()) {
    ASSERT_TRUE(ForceKernels(set->name).ok()) << set->name;
    EXPECT_EQ(&Best(), set);
  }
}

}  // namespace
}  // namespace kvq::kernels

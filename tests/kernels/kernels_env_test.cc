// KVQ_KERNELS overrides Best(): BUILD runs this binary twice, once naming
// the reference and once naming an unknown variant (which falls back to the
// reference with a warning).
#include <cstdlib>

#include "gtest/gtest.h"
#include "kernels/kernels.h"

namespace kvq::kernels {
namespace {

TEST(KernelsEnvTest, OverrideSelectsTheReference) {
  ASSERT_NE(std::getenv("KVQ_KERNELS"), nullptr);
  EXPECT_EQ(&Best(), &Reference());
}

}  // namespace
}  // namespace kvq::kernels

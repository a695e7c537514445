#include "common/paths.h"

#include <filesystem>

#include "gtest/gtest.h"

namespace kvq {
namespace {

TEST(PathsTest, FindsSharedModelInsideTheSandbox) {
  const std::string dir = DefaultModelDir();
  ASSERT_FALSE(dir.empty()) << "../shared not found";
  EXPECT_TRUE(std::filesystem::exists(dir + "/stories260K.bin")) << dir;
  EXPECT_TRUE(std::filesystem::exists(dir + "/tok512.bin")) << dir;
}

TEST(PathsTest, AbsolutePathsAreKept) { EXPECT_EQ(ResolveUserPath("/x/y"), "/x/y"); }

}  // namespace
}  // namespace kvq

#include "kvstore/internal/byte_copy.h"

#include <string>

#include "gtest/gtest.h"

namespace kvq::kvstore::internal {
namespace {

TEST(ByteCopyTest, StreamCopyCopiesEveryLengthAndAlignment) {
  std::string src(1000, '\0');
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<char>(i * 7 + 3);
  for (size_t dst_off : {0, 1, 8, 15, 16, 17}) {
    for (size_t src_off : {0, 3, 16}) {
      for (size_t n : {0, 1, 15, 16, 63, 64, 65, 127, 128, 500, 900}) {
        std::string dst = UninitializedString(dst_off + n + 32);
        std::fill(dst.begin(), dst.end(), '#');
        StreamCopy(dst.data() + dst_off, src.data() + src_off, n);
        StreamCopyDone();
        EXPECT_EQ(dst.substr(dst_off, n), src.substr(src_off, n))
            << dst_off << " " << src_off << " " << n;
        // Nothing around the destination was touched.
        EXPECT_EQ(dst.substr(0, dst_off), std::string(dst_off, '#'));
        EXPECT_EQ(dst.substr(dst_off + n), std::string(32, '#'));
      }
    }
  }
}

TEST(ByteCopyTest, UninitializedStringHasItsSize) {
  EXPECT_EQ(UninitializedString(0).size(), 0u);
  std::string s = UninitializedString(786432);
  EXPECT_EQ(s.size(), 786432u);
  EXPECT_GE(s.capacity(), 786432u);
}

}  // namespace
}  // namespace kvq::kvstore::internal

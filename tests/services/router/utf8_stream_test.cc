#include "services/router/utf8_stream.h"

#include "gtest/gtest.h"

namespace kvq::router {
namespace {

TEST(Utf8StreamTest, AsciiPassesThrough) {
  Utf8Stream s;
  EXPECT_EQ(s.Push("Once upon"), "Once upon");
  EXPECT_EQ(s.Flush(), "");
}

TEST(Utf8StreamTest, HoldsBackASplitCharacter) {
  Utf8Stream s;  // "é" = C3 A9, "€" = E2 82 AC
  EXPECT_EQ(s.Push("caf\xC3"), "caf");
  EXPECT_EQ(s.Push("\xA9 \xE2\x82"), "\xC3\xA9 ");
  EXPECT_EQ(s.Push("\xAC"), "\xE2\x82\xAC");
}

TEST(Utf8StreamTest, InvalidBytesBecomeReplacement) {
  Utf8Stream s;
  EXPECT_EQ(s.Push("a\x80"
                   "b"),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(s.Push("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");  // overlong
  EXPECT_EQ(s.Push("\xED\xA0\x80"),
            "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(s.Push("\xE2\x82"
                   "x"),
            "\xEF\xBF\xBD\xEF\xBF\xBD"
            "x");  // cut short
}

TEST(Utf8StreamTest, FlushReplacesAnUnfinishedCharacter) {
  Utf8Stream s;
  EXPECT_EQ(s.Push("z\xF0\x9F"), "z");
  EXPECT_EQ(s.Flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(s.Flush(), "");
}

}  // namespace
}  // namespace kvq::router

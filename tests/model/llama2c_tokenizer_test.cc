#include "model/llama2c_tokenizer.h"

#include <string>
#include <vector>

#include "common/paths.h"
#include "gtest/gtest.h"
#include "model/internal/read_file.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

const Tokenizer& Tok() { return *testing::Stories260K().tokenizer; }

TEST(Llama2cTokenizerTest, EncodesOnceUponATime) {
  EXPECT_EQ(Tok().Encode("Once upon a time"), (std::vector<int>{1, 403, 407, 261, 378}));
  EXPECT_EQ(Tok().Encode(""), (std::vector<int>{1}));
}

TEST(Llama2cTokenizerTest, RoundTrips) {
  for (const std::string& text : {
           std::string("Once upon a time, there was a little girl named Lily."),
           std::string("  two leading spaces, a tab\tand a newline\n!"),
           std::string(
               "caf\xc3\xa9 na\xc3\xafve \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80"),
           std::string("\x01\x02 control bytes \x7f and invalid UTF-8 \xff\xfe\x80"),
           std::string("x"),
       }) {
    const std::vector<int> ids = Tok().Encode(text);
    absl::StatusOr<std::string> back = Tok().Decode(ids);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, text);
  }
}

TEST(Llama2cTokenizerTest, CharactersArePiecesOrByteFallbacks) {
  // U+00E9 is a piece of the 512-token vocabulary; U+00FC is not: two byte
  // pieces <0xC3> <0xBC> (id = byte + 3).
  EXPECT_EQ(Tok().Encode("\xc3\xa9"), (std::vector<int>{1, 410, 485}));
  EXPECT_EQ(Tok().Encode("\xc3\xbc"), (std::vector<int>{1, 410, 0xc3 + 3, 0xbc + 3}));
}

TEST(Llama2cTokenizerTest, DecodeDropsLeadingSpaceOnlyAfterBos) {
  const int once = 403;  // " Once"
  EXPECT_EQ(Tok().DecodePiece(1, once), "Once");
  EXPECT_EQ(Tok().DecodePiece(5, once), " Once");
  EXPECT_EQ(Tok().DecodePiece(-1, 13), "\n");  // <0x0A>
  EXPECT_EQ(Tok().DecodePiece(-1, 1), "");
}

TEST(Llama2cTokenizerTest, RejectsOutOfRangeIds) {
  EXPECT_EQ(Tok().Decode({1, 512}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Tok().Decode({-1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Llama2cTokenizerTest, RejectsBadFiles) {
  absl::StatusOr<std::string> bytes =
      model_internal::ReadFile(DefaultModelDir() + "/tok512.bin");
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_TRUE(Llama2cTokenizer::Parse(*bytes, 512).ok());
  EXPECT_EQ(
      Llama2cTokenizer::Parse(bytes->substr(0, bytes->size() - 3), 512).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Llama2cTokenizer::Parse(*bytes, 511).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Llama2cTokenizer::Parse(*bytes, 513).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Llama2cTokenizer::Parse("", 512).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string bad_len = *bytes;
  const int32_t huge = 1 << 30;
  std::memcpy(bad_len.data() + 8, &huge, 4);  // token 0's length
  EXPECT_EQ(Llama2cTokenizer::Parse(bad_len, 512).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Llama2cTokenizer::Load("/nonexistent/tok.bin", 512).status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvq::model

// The BlockEncoding wire message carries every field of format 2.
#include "services/common/common_proto.h"

#include "gtest/gtest.h"
#include "kernels/block_format.h"
#include "proto/common.pb.h"

namespace kvq::services {
namespace {

TEST(CommonProtoTest, EncodingRoundTripsEveryField) {
  for (const kernels::BlockEncoding& enc :
       {kernels::BlockEncoding::Fp16(32), kernels::BlockEncoding::Quantized(2, 32, 8),
        kernels::BlockEncoding::Mixed(4, 2, 16, 8, 5, 3, kernels::ScaleFormat::kU8)}) {
    v1::BlockEncoding proto;
    EncodingToProto(enc, &proto);
    absl::StatusOr<kernels::BlockEncoding> back = EncodingFromProto(proto, "enc");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, enc);
  }
  v1::BlockEncoding proto;
  EncodingToProto(
      kernels::BlockEncoding::Mixed(4, 2, 16, 8, 5, 3, kernels::ScaleFormat::kU8),
      &proto);
  EXPECT_EQ(proto.v_bits(), 2u);
  EXPECT_EQ(proto.k_outliers(), 5u);
  EXPECT_EQ(proto.v_outliers(), 3u);
  EXPECT_EQ(proto.scales(), 1u);
  proto.set_v_outliers(70000);
  EXPECT_EQ(EncodingFromProto(proto, "enc").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvq::services

#include "model/kv_mode.h"

#include "gtest/gtest.h"

namespace kvq::model {
namespace {

TEST(KvModeTest, ParsesShortForms) {
  absl::StatusOr<KvMode> m = ParseKvMode("fp32");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, KvMode::Kind::kFp32);
  m = ParseKvMode("fp16");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->kind, KvMode::Kind::kFp16);
  for (int bits : {2, 4, 8}) {
    m = ParseKvMode("kivi" + std::to_string(bits));
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->kind, KvMode::Kind::kKivi);
    EXPECT_EQ(m->bits, bits);
    EXPECT_EQ(m->block, 32);
    EXPECT_EQ(m->residual, 128);
    absl::StatusOr<KvMode> r = m->Resolve(8);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->group, 8);  // min(32, head_dim)
    r = m->Resolve(128);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->group, 32);
  }
}

TEST(KvModeTest, ParsesFullForm) {
  absl::StatusOr<KvMode> m = ParseKvMode("kivi:bits=2,block=16,group=8,residual=32");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->bits, 2);
  EXPECT_EQ(m->block, 16);
  EXPECT_EQ(m->group, 8);
  EXPECT_EQ(m->residual, 32);
  EXPECT_EQ(m->ToString(), "kivi:bits=2,block=16,group=8,residual=32");
  m = ParseKvMode("kivi:bits=4");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->block, 32);
  EXPECT_EQ(m->residual, 128);
  absl::StatusOr<KvMode> again = ParseKvMode(m->Resolve(64)->ToString());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->group, 32);
}

TEST(KvModeTest, RejectsBadStrings) {
  for (const char* bad :
       {"", "fp8", "kivi", "kivi3", "kivi16", "KIVI2", "kivi:", "kivi:bits=3",
        "kivi:bits=2,bits=4", "kivi:bits=two", "kivi:bits=2,block=0", "kivi:colour=2",
        "kivi:bits=2,residual=33", "kivi:bits=2,residual=-32", "kivi:bits=2,,block=32",
        "kivi:bits=2,block=99999", "kivi:bits=2,group=-1", "fp16 "}) {
    absl::StatusOr<KvMode> m = ParseKvMode(bad);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    if (!m.ok()) {
      EXPECT_NE(m.status().message().find("--kv"), std::string::npos) << bad;
    }
  }
}

TEST(KvModeTest, ResolveChecksGroupAndBlock) {
  absl::StatusOr<KvMode> m = ParseKvMode("kivi:bits=2,group=24");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Resolve(64).status().code(), absl::StatusCode::kInvalidArgument);
  m = ParseKvMode("kivi:bits=2,block=3,residual=0");  // 3 * 2 bits is not whole bytes
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->Resolve(8).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvq::model

#include "model/pareto.h"

#include <cmath>
#include <limits>
#include <set>

#include "gtest/gtest.h"
#include "tests/model/test_model.h"

namespace kvq::model {
namespace {

std::vector<bool> Front(std::vector<ParetoPoint> points) { return ParetoFront(points); }

TEST(ParetoFrontTest, DominatedPointsAreOff) {
  // (5, 4.0) and (7, 3.6) trade bits for ppl; (6, 4.1) loses to (5, 4.0) on
  // both; (8, 3.6) has more bits for the same ppl as (7, 3.6).
  EXPECT_EQ(Front({{5, 4.0}, {6, 4.1}, {7, 3.6}, {8, 3.6}}),
            (std::vector<bool>{true, false, true, false}));
}

TEST(ParetoFrontTest, EqualBitsKeepsTheLowerPpl) {
  EXPECT_EQ(Front({{7.386, 4.17}, {7.386, 3.53}, {7.386, 3.90}}),
            (std::vector<bool>{false, true, false}));
}

TEST(ParetoFrontTest, TiesAreBothOnTheFront) {
  // Equal points do not dominate each other...
  EXPECT_EQ(Front({{16, 3.5048}, {16, 3.5048}}), (std::vector<bool>{true, true}));
  // ...but both fall to a point better in one coordinate.
  EXPECT_EQ(Front({{16, 3.5048}, {16, 3.5048}, {11, 3.5048}}),
            (std::vector<bool>{false, false, true}));
  EXPECT_EQ(Front({{16, 3.5048}, {16, 3.5048}, {16, 3.5046}}),
            (std::vector<bool>{false, false, true}));
}

TEST(ParetoFrontTest, EdgeCases) {
  EXPECT_TRUE(Front({}).empty());
  EXPECT_EQ(Front({{4.5, 9.9}}), (std::vector<bool>{true}));
  // A NaN is never on the front and dominates nothing.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_EQ(Front({{nan, 1.0}, {5, nan}, {6, 4.0}}),
            (std::vector<bool>{false, false, true}));
  // The cheapest point and the best point are always on the front.
  EXPECT_EQ(Front({{3, 9}, {4, 8}, {5, 7}, {10, 1}, {9, 7}}),
            (std::vector<bool>{true, true, true, true, false}));
}

TEST(ParetoGridTest, DefaultGridParsesAndCoversKivi) {
  const std::vector<std::string> grid = DefaultParetoGrid(8);
  std::set<std::string> canonical;
  std::set<int> groups;
  for (const std::string& text : grid) {
    absl::StatusOr<KvMode> m = ParseKvMode(text);
    ASSERT_TRUE(m.ok()) << m.status();
    absl::StatusOr<KvMode> r = m->Resolve(8);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->ToString(), text);  // already canonical
    EXPECT_TRUE(canonical.insert(text).second) << "repeated: " << text;
    if (r->IsPureKivi()) groups.insert(r->group);
  }
  EXPECT_EQ(grid.front(), "fp16");
  EXPECT_EQ(groups, (std::set<int>{2, 4, 8}));
  // 3 bits x 3 groups x (B16: R 0,32,64,128; B32: 4; B64: 0,64,128; B128: 0,128).
  EXPECT_EQ(canonical.count("kivi:bits=2,block=32,group=8,residual=0"), 1u);
  EXPECT_EQ(canonical.count("kivi:bits=2,block=64,group=8,residual=32"), 0u);
  EXPECT_GE(grid.size(), 1u + 3 * 3 * 13);
  for (const std::string& text : QuickParetoGrid(8)) {
    EXPECT_TRUE(ParseKvMode(text).ok()) << text;
  }
  // head_dim 128: G in {32, 16, 8, 4, 2}.
  groups.clear();
  for (const std::string& text : DefaultParetoGrid(128)) {
    absl::StatusOr<KvMode> m = ParseKvMode(text);
    ASSERT_TRUE(m.ok()) << text;
    if (m->IsPureKivi()) groups.insert(m->group);
  }
  EXPECT_EQ(groups, (std::set<int>{2, 4, 8, 16, 32}));
  // kvq's modes: K and V bits apart, u8 scales, outliers, sinks, edge layers.
  int kvq = 0;
  for (const char* want :
       {"kivi:kbits=4,vbits=2,block=16,group=8,residual=0,scales=u8",
        "kivi:bits=2,block=16,group=4,residual=0,scales=u8",
        "kivi:bits=2,block=32,group=8,residual=0,outliers=0.02",
        "kivi:bits=2,block=16,group=8,residual=0,koutliers=0.05,scales=u8",
        "kivi:bits=2,block=16,group=8,residual=0,scales=u8,sinks=32",
        "kivi:bits=2,block=16,group=8,residual=0,scales=u8,edge_layers=1,"
        "edge_bits=8"}) {
    EXPECT_EQ(canonical.count(want), 1u) << want;
  }
  for (const std::string& text : canonical) kvq += !ParseKvMode(text)->IsPureKivi();
  EXPECT_GE(kvq, 81 + 18);
}

ParetoRow Row(const char* kv, double bits, double ppl) {
  ParetoRow r{.mode = *ParseKvMode(kv), .effective_bits = bits};
  r.result.ppl = ppl;
  return r;
}

TEST(KiviComparisonTest, JudgesDominanceAndReach) {
  const char* k2 = "kivi:bits=2,block=64,group=8,residual=0";
  const char* k2b16 = "kivi:bits=2,block=16,group=8,residual=0";
  const char* k4 = "kivi:bits=4,block=16,group=8,residual=0";
  const char* u8 = "kivi:bits=2,block=16,group=8,residual=0,scales=u8";
  const char* k4v2 = "kivi:kbits=4,vbits=2,block=16,group=8,residual=0,scales=u8";
  std::vector<ParetoRow> rows = {
      Row("fp16", 16, 3.50),
      Row(k2, 5.35, 4.21),
      Row(k2b16, 5.40, 3.96),
      Row(k4, 7.33, 3.5048),
      Row("kivi:bits=2,block=32,group=8,residual=0", 5.57, 4.15),
      Row(u8, 4.32, 3.98),
      Row(k4v2, 5.28, 3.51)};
  KiviComparison c = CompareWithKivi(rows);
  // KIVI's own front: k2, k2b16, k4 (the B32 row is dominated by k2b16; fp16
  // is not KIVI).
  ASSERT_EQ(c.kivi_front.size(), 3u);
  EXPECT_EQ(c.kivi_front[0].kivi, 1);
  EXPECT_EQ(c.kivi_front[0].kvq, 5);  // the fewest bits among those that beat it
  EXPECT_EQ(c.kivi_front[1].kivi, 2);
  EXPECT_EQ(c.kivi_front[1].kvq, 6);  // u8's 3.98 is not below 3.96
  EXPECT_EQ(c.kivi_front[2].kivi, 3);
  EXPECT_EQ(c.kivi_front[2].kvq, -1);  // 3.51 is not below 3.5048
  EXPECT_FALSE(c.Dominates());
  EXPECT_EQ(c.cheapest_kivi, 1);
  EXPECT_EQ(c.further, 5);  // 4.32 <= 5.35 - 1 and 3.98 <= 4.21
  EXPECT_TRUE(c.ReachesFurther());
  rows.push_back(
      Row("kivi:kbits=4,vbits=4,block=16,group=8,residual=0,scales=u8", 7.33, 3.50));
  c = CompareWithKivi(rows);
  EXPECT_EQ(c.kivi_front[2].kvq, 7);  // equal bits, lower ppl: beaten
  EXPECT_TRUE(c.Dominates());
  // Reach needs a full bit and no higher ppl.
  rows[5].effective_bits = 4.36;
  EXPECT_FALSE(CompareWithKivi(rows).ReachesFurther());
  rows[5].effective_bits = 4.32;
  rows[5].result.ppl = 4.22;
  EXPECT_FALSE(CompareWithKivi(rows).ReachesFurther());
  // No KIVI rows: nothing to judge.
  const std::vector<ParetoRow> only_kvq = {Row(u8, 4.32, 3.98)};
  c = CompareWithKivi(only_kvq);
  EXPECT_TRUE(c.kivi_front.empty());
  EXPECT_FALSE(c.Dominates());
  EXPECT_FALSE(c.ReachesFurther());
}

TEST(SweepParetoTest, RowsAreEvalPplsAndFrontIsMarked) {
  const LoadedModel& m = testing::Stories260K();
  Transformer t(*m.model);
  const std::string text =
      "Once upon a time, there was a little girl named Lily. She loved to play outside "
      "in the sun with her big red ball and her small brown dog.\n\n"
      "Tom had a toy car. He liked to race it across the floor of the kitchen every day "
      "after lunch, while his mom made tea and his cat watched from the chair.\n";
  const std::vector<std::string> modes = {"kivi:bits=2,block=16,group=8,residual=0",
                                          "fp16",
                                          "kivi:bits=8,block=16,group=8,residual=0",
                                          "kivi:bits=8,block=16,residual=0"};  // repeat
  absl::StatusOr<std::vector<ParetoRow>> rows =
      SweepPareto(t, *m.tokenizer, text, modes, {.threads = 2});
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 3u);  // the repeat is dropped
  for (size_t i = 0; i < rows->size(); ++i) {
    const ParetoRow& r = (*rows)[i];
    absl::StatusOr<PerplexityResult> want =
        EvaluatePerplexity(t, *m.tokenizer, text, r.mode);
    ASSERT_TRUE(want.ok());
    EXPECT_EQ(r.result.ppl, want->ppl) << r.mode.ToString();
    EXPECT_EQ(r.result.cached_tokens.size(), 2u);
    EXPECT_DOUBLE_EQ(r.effective_bits, want->cache.BitsPerElement()) << r.mode.ToString();
    if (i > 0) {
      EXPECT_LE((*rows)[i - 1].effective_bits, r.effective_bits);
    }
  }
  EXPECT_EQ((*rows)[2].mode.ToString(), "fp16");
  EXPECT_EQ((*rows)[2].effective_bits, 16.0);
  EXPECT_TRUE((*rows)[0].pareto);  // the cheapest
  // fp16 is on the front only if kivi8 is worse.
  EXPECT_EQ((*rows)[2].pareto, (*rows)[2].result.ppl < (*rows)[1].result.ppl &&
                                   (*rows)[2].result.ppl < (*rows)[0].result.ppl);
}

TEST(SweepParetoTest, BadModesAreNamed) {
  const LoadedModel& m = testing::Stories260K();
  Transformer t(*m.model);
  for (const char* bad : {"kivi3", "kivi:bits=2,group=3", "kivi:bits=2,outliers=0.9"}) {
    const std::vector<std::string> modes = {"fp16", bad};
    absl::StatusOr<std::vector<ParetoRow>> rows =
        SweepPareto(t, *m.tokenizer, "a line\n", modes, {});
    EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(rows.status().message().find(std::string("\"") + bad + "\""),
              std::string::npos)
        << rows.status();
  }
  const std::vector<std::string> none;
  EXPECT_EQ(SweepPareto(t, *m.tokenizer, "a line\n", none, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<std::string> one = {"fp16"};
  EXPECT_EQ(SweepPareto(t, *m.tokenizer, "a line\n", one, {.threads = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::vector<ParetoRow>> empty =
      SweepPareto(t, *m.tokenizer, "\n\n", one, {});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("no token to predict"), std::string::npos);
}

}  // namespace
}  // namespace kvq::model

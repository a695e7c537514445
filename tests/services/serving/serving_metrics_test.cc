// Serving metrics' label values come from a closed set: a client choosing
// many kv modes cannot grow the number of series.
#include "services/serving/serving_metrics.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "model/kv_mode.h"
#include "prometheus/registry.h"
#include "services/serving/request.h"

namespace kvq::serving {
namespace {

size_t ConfigInfoSeries(prometheus::Registry& registry) {
  for (const prometheus::MetricFamily& f : registry.Collect()) {
    if (f.name == "kvq_cache_config_info") return f.metric.size();
  }
  return 0;
}

TEST(ServingMetricsTest, KvModeLabelsAreAClosedSet) {
  prometheus::Registry registry;
  ServingMetrics m(registry, "prefill", "stories260K");
  for (int r = 0; r < 2000; r += 32) {
    auto mode = model::ParseKvMode(absl::StrCat("kivi:bits=2,block=32,residual=", r));
    ASSERT_TRUE(mode.ok());
    m.NoteKvMode(KvModeLabel(*mode));
    m.NoteKvMode(mode->ToString());  // a caller passing free text: "other"
  }
  m.NoteKvMode(KvModeLabel(*model::ParseKvMode("fp16")));
  EXPECT_EQ(ConfigInfoSeries(registry), 3u);  // kivi2, other, fp16
  EXPECT_EQ(KvModeLabel(*model::ParseKvMode("kivi4")), "kivi4");
  EXPECT_TRUE(ServingMetrics::IsKvModeLabel("kivi8"));
  EXPECT_FALSE(ServingMetrics::IsKvModeLabel("kivi:bits=2,block=32,group=8,residual=0"));
}

}  // namespace
}  // namespace kvq::serving

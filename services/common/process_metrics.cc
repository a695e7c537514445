#include "services/common/process_metrics.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace kvq::services {
namespace {

std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The fields of /proc/self/stat after the command name (which may contain
// spaces and parentheses, so the split starts after the last ')'): field 3
// (state) is [0], so field N is [N - 3].
std::vector<std::string> StatFields() {
  const std::optional<std::string> stat = ReadFile("/proc/self/stat");
  if (!stat) return {};
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) return {};
  return absl::StrSplit(absl::string_view(*stat).substr(close + 1), ' ',
                        absl::SkipEmpty());
}

std::optional<double> Field(const std::vector<std::string>& fields, int n) {
  double v = 0;
  if (n - 3 < 0 || n - 3 >= static_cast<int>(fields.size()) ||
      !absl::SimpleAtod(fields[n - 3], &v)) {
    return std::nullopt;
  }
  return v;
}

// Seconds since the epoch at boot (/proc/stat "btime").
std::optional<double> BootTime() {
  const std::optional<std::string> stat = ReadFile("/proc/stat");
  if (!stat) return std::nullopt;
  for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
    double v = 0;
    if (absl::ConsumePrefix(&line, "btime ") && absl::SimpleAtod(line, &v)) return v;
  }
  return std::nullopt;
}

void Add(const std::map<std::string, std::string>& labels, const char* name,
         const char* help, prometheus::MetricType type, std::optional<double> value,
         std::vector<prometheus::MetricFamily>* families) {
  if (!value) return;
  prometheus::ClientMetric metric;
  for (const auto& [k, v] : labels) metric.label.push_back({k, v});
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = *value;
  } else {
    metric.gauge.value = *value;
  }
  families->push_back({name, help, type, {metric}});
}

}  // namespace

void AppendProcessMetrics(const std::map<std::string, std::string>& labels,
                          std::vector<prometheus::MetricFamily>* families) {
  const std::vector<std::string> stat = StatFields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  std::optional<double> cpu, start, rss, vsize;
  if (const auto utime = Field(stat, 14), stime = Field(stat, 15); utime && stime) {
    cpu = (*utime + *stime) / ticks;
  }
  if (const auto since_boot = Field(stat, 22), boot = BootTime(); since_boot && boot) {
    start = *boot + *since_boot / ticks;
  }
  if (const auto pages = Field(stat, 24)) rss = *pages * page;
  vsize = Field(stat, 23);
  std::optional<double> open_fds, max_fds;
  std::error_code ec;
  double n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++n;
  }
  if (!ec) open_fds = n;
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    max_fds = static_cast<double>(limit.rlim_cur);
  }
  using prometheus::MetricType;
  Add(labels, "process_cpu_seconds_total", "Total user and system CPU time in seconds.",
      MetricType::Counter, cpu, families);
  Add(labels, "process_resident_memory_bytes", "Resident memory size in bytes.",
      MetricType::Gauge, rss, families);
  Add(labels, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
      MetricType::Gauge, vsize, families);
  Add(labels, "process_open_fds", "Number of open file descriptors.", MetricType::Gauge,
      open_fds, families);
  Add(labels, "process_max_fds", "Maximum number of open file descriptors.",
      MetricType::Gauge, max_fds, families);
  Add(labels, "process_start_time_seconds",
      "Start time of the process since the Unix epoch in seconds.", MetricType::Gauge,
      start, families);
  Add(labels, "process_threads", "Number of OS threads in the process.",
      MetricType::Gauge, Field(stat, 20), families);
}

}  // namespace kvq::services

// The standard Prometheus process metrics (the names every official client
// library exports), read from /proc at scrape time: what an operator graphs
// against a pod's memory limit before it is OOM-killed.
//
//   process_cpu_seconds_total       counter  user + system CPU time
//   process_resident_memory_bytes   gauge    RSS
//   process_virtual_memory_bytes    gauge
//   process_open_fds                gauge
//   process_max_fds                 gauge    RLIMIT_NOFILE (soft)
//   process_start_time_seconds      gauge    since the Unix epoch
//   process_threads                 gauge
//
//   std::vector<prometheus::MetricFamily> families = registry.Collect();
//   AppendProcessMetrics({{"role", "store"}}, &families);
#ifndef KVQ_SERVICES_COMMON_PROCESS_METRICS_H_
#define KVQ_SERVICES_COMMON_PROCESS_METRICS_H_

#include <map>
#include <string>
#include <vector>

#include "prometheus/metric_family.h"

namespace kvq::services {

// Appends the families above for this process, each metric with `labels`.
// A value that cannot be read (no /proc) is left out, not reported as 0.
void AppendProcessMetrics(const std::map<std::string, std::string>& labels,
                          std::vector<prometheus::MetricFamily>* families);

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_PROCESS_METRICS_H_

// kvq_build_info: one gauge per process, value 1, whose labels say what runs
// there (design section 6 style, role label like every kvq metric):
//
//   kvq_build_info{role="decode",version="0.1.0",kernel_variant="avx512",
//                  cpu="AMD EPYC 9B45",block_format="1",weights="bf16",
//                  weights_kernel="avx512bf16"} 1
//
// so a dashboard can show which pods run which kernels on which CPUs (the
// weights labels on the workers that hold a model: prefill and decode).
#ifndef KVQ_SERVICES_COMMON_BUILD_INFO_H_
#define KVQ_SERVICES_COMMON_BUILD_INFO_H_

#include <map>
#include <string>

#include "prometheus/registry.h"

namespace kvq::services {

// The labels above but `role`.
std::map<std::string, std::string> BuildInfoLabels();

// Registers kvq_build_info{role=`role`, BuildInfoLabels()..., extra...} = 1.
void ExportBuildInfo(prometheus::Registry& registry, const std::string& role,
                     const std::map<std::string, std::string>& extra = {});

}  // namespace kvq::services

#endif  // KVQ_SERVICES_COMMON_BUILD_INFO_H_

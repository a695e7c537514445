// --kernel_variant: accepted by every command (a cli::GlobalFlag); forces the
// KV-cache kernel variant kernels::Best() returns for the whole process.
//
//   kvq generate --kernel_variant=int_avx512vnni ...
//   kvq serve decode --kernel_variant=avx2 ...
//
// An unknown name lists the variants; one this CPU cannot run names the CPU
// and its missing features (kernels::ForceKernels); both exit with status 2.
#ifndef KVQ_CLI_KERNEL_VARIANT_H_
#define KVQ_CLI_KERNEL_VARIANT_H_

#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, kernel_variant);

#endif  // KVQ_CLI_KERNEL_VARIANT_H_

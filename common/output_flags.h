// Output flags shared by every subcommand of the kvq binary: --json. A leaf
// target (//common:output_flags) so that any layer's command can read it
// without depending on another layer's flags (issue 13); defined once, here.
//
//   #include "common/output_flags.h"
//   if (absl::GetFlag(FLAGS_json)) PrintJson(result);
#ifndef KVQ_COMMON_OUTPUT_FLAGS_H_
#define KVQ_COMMON_OUTPUT_FLAGS_H_

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(bool, json);  // machine-readable output

#endif  // KVQ_COMMON_OUTPUT_FLAGS_H_

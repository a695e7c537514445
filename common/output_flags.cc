#include "common/output_flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(bool, json, false, "Print one JSON object instead of text.");

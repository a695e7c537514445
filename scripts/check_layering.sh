#!/usr/bin/env bash
# Checks the layering of docs/architecture.md with `bazel query`:
#  1. only command targets (the binary layer) depend on //cli:flags or
#     //cli:command (and the model commands' shared flag inputs,
#     //model:command_inputs);
#  2. the serving cores depend on neither gRPC nor the protos, but through
#     the store client's factory (//services/store:client: an interface with
#     domain types whose implementation is gRPC);
#  3. the kernels depend on nothing above them (only kernels/, common/ and
#     system libraries).
# Prints what breaks a rule and exits non-zero.
set -uo pipefail
cd "$(dirname "$0")/.."

fail=0
# A failed query must not pass for an empty answer.
q() {
  bazel query --noshow_progress "$1" 2>/dev/null || echo "(bazel query failed: $1)"
}

commands='^//(cli:(main|version|flags|command|kernel_variant)|clients/cli:client_commands|model:command_inputs|.*:(serve_[a-z_]+|[a-z_]*_command))$'
bad=$(q 'rdeps(//... - //tests/..., //cli:flags + //cli:command, 1)' | grep -Ev "$commands")
if [[ -n "$bad" ]]; then
  echo "layering: libraries that read the binary's flags or commands:"; echo "$bad"; fail=1
fi

cores='//services/prefill:prefill_worker + //services/decode:decode_worker + //services/decode:batch_engine + //services/router:router + //services/serving:worker_store + //services/serving:worker_types + //services/serving:request + //services/serving:kv_plan'
bad=$(q "(deps($cores) - deps(//services/store:client)) intersect (//proto/... + \"//third_party:grpc++\" + //third_party:protobuf)")
if [[ -n "$bad" ]]; then
  echo "layering: serving cores that depend on gRPC or protos:"; echo "$bad"; fail=1
fi

bad=$(q 'kind(rule, deps(kind(rule, //kernels/...) - //kernels/bench:bench_kernels_command)) - kind(rule, //kernels/... + //common/... + //third_party/...)' |
      grep -v '^@')
if [[ -n "$bad" ]]; then
  echo "layering: kernels that depend on layers above them:"; echo "$bad"; fail=1
fi

if ((fail == 0)); then echo "layering: ok"; fi
exit $fail

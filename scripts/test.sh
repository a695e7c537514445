#!/usr/bin/env bash
# Runs every kvq test: installs what is missing (scripts/setup.sh), checks
# formatting, runs `bazel test //...`, the fuzzers and the deployment checks,
# then a set of tests again under ASan+UBSan and under TSan, and ends with the
# line `N passed, N failed` counted from the individual test cases.
# Exit status is non-zero if anything failed.
#
#   scripts/test.sh                       # everything (what CI runs)
#   scripts/test.sh //kernels/...         # a subset of Bazel targets, no sanitizers
#   scripts/test.sh --sanitizers          # only the sanitizer runs
#   KVQ_SANITIZERS=0 scripts/test.sh      # everything but the sanitizer runs
#   KVQ_SANITIZERS=tsan scripts/test.sh --sanitizers   # one of them
set -uo pipefail
cd "$(dirname "$0")/.."

only_sanitizers=0
if [[ "${1:-}" == --sanitizers ]]; then only_sanitizers=1; shift; fi
# Which sanitizer configs (.bazelrc) run: all by default, none when targets are
# given, unless KVQ_SANITIZERS says ("0" = none, or e.g. "asan tsan").
sanitizers="${KVQ_SANITIZERS-asan tsan}"
if (($# > 0)) && [[ -z "${KVQ_SANITIZERS+set}" ]]; then sanitizers=""; fi
if [[ "$sanitizers" == 0 ]]; then sanitizers=""; fi

bash scripts/setup.sh

passed=0
failed=0
skipped=0
failures=()
bep_dir="$(mktemp -d)"
trap 'rm -rf "$bep_dir"' EXIT

# bazel_test NAME BAZEL_TEST_ARGS...: one `bazel test` run, its cases counted
# from the reports of this run only (its build event file), failures named
# with NAME.
bazel_test() {
  local name="$1"; shift
  local bep="$bep_dir/$name.json" rc p f s
  bazel test --keep_going --build_event_json_file="$bep" "$@"
  rc=$?
  read -r p f s < <(python3 scripts/count_tests.py --bep "$bep" --tag "$name")
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
  if ((f > 0)); then failures+=("$name: $f test case(s), the FAILED: [$name] lines above"); fi
  if ((rc != 0 && f == 0)); then
    # A build error or a test that crashed before writing its report.
    failed=$((failed + 1)); failures+=("$name: bazel test (exit $rc)")
  fi
}

check() {  # check NAME COMMAND...: a non-Bazel check counted as one test.
  local name="$1"; shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failures+=("$name")
  fi
}

if ((!only_sanitizers)); then
  check format bash scripts/check_format.sh
  # The layers of docs/architecture.md (bazel query).
  check layering bash scripts/check_layering.sh

  targets=("$@")
  if ((${#targets[@]} == 0)); then targets=(//...); fi
  bazel_test bazel "${targets[@]}"

  # The KV store's decoders under libFuzzer (clang-14), bounded; run longer by
  # hand with tests/fuzz/run_fuzz.sh 600.
  check fuzz bash tests/fuzz/run_fuzz.sh "${KVQ_FUZZ_SECONDS:-20}"

  # Deployment manifests, dashboards and alert rules, checked with real tools
  # (needs the kvq binary built above for its flag check).
  deploy_out="$(bash scripts/check_deploy.sh 2>&1)"
  echo "$deploy_out" | grep -E '^(FAIL|SKIP)' || true
  if [[ "$(echo "$deploy_out" | tail -n 1)" =~ deploy:\ ([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    if ((BASH_REMATCH[2] > 0)); then
      failed=$((failed + BASH_REMATCH[2])); failures+=("deploy checks")
    fi
  else
    echo "$deploy_out" | tail -n 20
    failed=$((failed + 1)); failures+=("deploy checks (no summary)")
  fi

fi

# The sanitizer runs (docs/CONTRIBUTING.md): each config builds into its own
# output tree (--platform_suffix) and leaves the bazel-* symlinks to the plain
# build above (--symlink_prefix=/). A test opts out with the tag no-asan or
# no-tsan, with its reason in its BUILD file.
#
# ASan+UBSan: the C++ unit tests and the store and serving integration tests,
# whose kvq servers are the same ASan build. LeakSanitizer is on.
ASAN_TESTS=(
  //tests/common/... //tests/kernels/... //tests/kvstore/... //tests/model/...
  //tests/services/...
  //tests/integration:store_test
  //tests/integration:store_bench_test
  //tests/integration:serving_bad_requests_test
  //tests/integration:serving_equivalence_test
  //tests/integration:serving_faults_test
  //tests/integration:serving_prefix_reuse_test
  //tests/integration:serving_robustness_test
)
# TSan: the store (the KV store, its service, a real store process) and the
# decode worker's batch engine. Suppressions: scripts/sanitizers/tsan.supp.
TSAN_TESTS=(
  //tests/kvstore/... //tests/services/store/...
  //tests/integration:store_test
  //tests/integration:store_bench_test
  //tests/services/decode:batch_engine_test
  //tests/services/decode:decode_worker_test
)
TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/sanitizers/tsan.supp"
for config in $sanitizers; do
  case "$config" in
    asan) tests=("${ASAN_TESTS[@]}"); env=() ;;
    tsan) tests=("${TSAN_TESTS[@]}"); env=(--test_env="TSAN_OPTIONS=$TSAN_OPTIONS") ;;
    *) failed=$((failed + 1)); failures+=("KVQ_SANITIZERS: unknown config $config"); continue ;;
  esac
  start=$SECONDS
  bazel_test "$config" --config="$config" --build_tests_only --symlink_prefix=/ \
    --test_tag_filters="-no-$config" "${env[@]}" "${tests[@]}"
  echo "$config: $((SECONDS - start))s"
done

if ((${#failures[@]})); then printf 'failed: %s\n' "${failures[@]}"; fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
((failed == 0))

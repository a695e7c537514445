#!/usr/bin/env bash
# Runs every kvq test: installs what is missing (scripts/setup.sh), checks
# formatting, runs `bazel test //...`, and ends with the line
# `N passed, N failed` counted from the individual test cases.
# Exit status is non-zero if anything failed.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh //kernels/...   # a subset of Bazel targets
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

passed=0
failed=0
failures=()

check() {  # check NAME COMMAND...: a non-Bazel check counted as one test.
  local name="$1"; shift
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1)); failures+=("$name")
  fi
}

check format bash scripts/check_format.sh
# The layers of docs/architecture.md (bazel query).
check layering bash scripts/check_layering.sh

targets=("$@")
if ((${#targets[@]} == 0)); then targets=(//...); fi
bazel test --keep_going "${targets[@]}"
bazel_rc=$?

read -r p f s < <(python3 scripts/count_tests.py bazel-testlogs)
passed=$((passed + p))
failed=$((failed + f))
if ((bazel_rc != 0 && f == 0)); then
  # A build error or a test that crashed before writing its report.
  failed=$((failed + 1)); failures+=("bazel test (exit $bazel_rc)")
fi

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

if ((${#failures[@]})); then printf 'failed: %s\n' "${failures[@]}"; fi
echo "${passed} passed, ${failed} failed, ${s} skipped"
((failed == 0))

#!/usr/bin/env bash
# Checks everything under deploy/ with the real tools, offline (no cluster,
# no container engine, no Grafana): yamllint; promtool on both scrape
# configs, the alert rules and their unit tests; every PromQL expression of
# the dashboards parsed by promtool and the dashboards against Grafana's
# schema; the metric list against the dashboards
# and rules; `kubectl kustomize` of the base and every overlay; every
# rendered object against the Kubernetes (and Prometheus Operator) schemas,
# strictly; the flags the manifests pass against the kvq binary's --help; the
# Dockerfile against the manifests. Then self-tests that break an input on
# purpose and expect the check to fail, so no check passes vacuously.
#
# Prints `PASS name`, `FAIL name` (with the tool's output) or `SKIP name:
# why` per check and ends with `deploy: N passed, M failed`; exits non-zero
# when anything failed. Needs the Debian packages prometheus (promtool),
# yamllint, python3-yaml, nodejs and npm, and kubectl; installs the npm
# packages of deploy/tools (package-lock.json) on first use.
#
#   scripts/check_deploy.sh            # everything
#   KVQ_BINARY=path/to/kvq scripts/check_deploy.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
KVQ_BINARY="${KVQ_BINARY:-bazel-bin/kvq}"
CHECKS="$PY deploy/tools/deploy_checks.py"  # for `bash -c` command strings
checks() { "$PY" deploy/tools/deploy_checks.py "$@"; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
skip() { echo "SKIP $1: $2"; }

# check NAME COMMAND...: passes when COMMAND exits 0.
check() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then
    pass "$name"
  else
    fail "$name"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

# expect_failure NAME PATTERN COMMAND...: a self-test; passes when COMMAND
# fails and its output contains PATTERN (the check caught the planted error).
expect_failure() {
  local name="$1" pattern="$2" out
  shift 2
  if out="$("$@" 2>&1)"; then
    fail "$name (the broken input was accepted)"
  elif grep -qF -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name (failed, but without \"$pattern\")"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}

have() { command -v "$1" >/dev/null 2>&1; }

# ---- YAML -------------------------------------------------------------------
if have yamllint; then
  check "yamllint deploy/" yamllint -s -c deploy/.yamllint deploy/
else
  fail "yamllint deploy/ (yamllint is not installed: scripts/setup.sh)"
fi

# ---- Prometheus -------------------------------------------------------------
if have promtool; then
  check "promtool check config prometheus-local.yml" \
    promtool check config deploy/prometheus/prometheus-local.yml
  # Debian's promtool is built without Kubernetes discovery: check the
  # kubernetes_sd_configs blocks ourselves and promtool the rest.
  check "promtool check config prometheus-k8s.yml (kubernetes_sd checked separately)" \
    bash -c "$CHECKS k8s-sd deploy/prometheus/prometheus-k8s.yml $tmp/k8s-prom.yml &&
             promtool check config $tmp/k8s-prom.yml"
  check "promtool check rules" promtool check rules deploy/prometheus/rules/*.yml
  check "promtool test rules (alert unit tests)" \
    promtool test rules deploy/prometheus/tests/*.yml
  check "local launcher config (make_local_config.py) loads" \
    bash -c "$PY deploy/prometheus/make_local_config.py --out $tmp/local \
               --target store=127.0.0.1:9101 --target prefill=127.0.0.1:9102 \
               --target decode=127.0.0.1:9103 --target router=127.0.0.1:9104 &&
             promtool check config $tmp/local/prometheus.yml"
  check "dashboards lint and every PromQL expression parses" \
    bash -c "$CHECKS dashboards deploy/grafana/dashboards $tmp/dash-rules.yml &&
             promtool check rules $tmp/dash-rules.yml"
else
  fail "promtool checks (promtool is not installed: Debian package prometheus)"
fi
check "deploy/metrics.txt matches the dashboards and rules" \
  checks metrics deploy/metrics.txt deploy/grafana/dashboards deploy/prometheus/rules/*.yml

# ---- Kubernetes ---------------------------------------------------------------
rendered=()
if have kubectl; then
  for dir in deploy/k8s/base deploy/k8s/overlays/*/; do
    dir="${dir%/}"
    name="$(basename "$dir")"
    if out="$(kubectl kustomize "$dir" 2>&1 >"$tmp/$name.yaml")"; then
      pass "kubectl kustomize $dir"
      rendered+=("$tmp/$name.yaml")
    else
      fail "kubectl kustomize $dir"
      printf '%s\n' "$out" | sed 's/^/    /'
    fi
  done
else
  skip "kubectl kustomize" "kubectl is not installed, manifests not rendered"
fi

node_ok=0
if ! have node || ! have npm; then
  fail "schema validation of manifests and dashboards (node and npm are needed)"
else
  if [ ! -d deploy/tools/node_modules ] ||
     [ deploy/tools/package-lock.json -nt deploy/tools/node_modules ]; then
    if out="$(cd deploy/tools && npm ci --no-audit --no-fund 2>&1)"; then
      touch deploy/tools/node_modules
      node_ok=1
    else
      fail "npm ci in deploy/tools"
      printf '%s\n' "$out" | tail -20 | sed 's/^/    /'
    fi
  else
    node_ok=1
  fi
fi
if ((node_ok)); then
  check "dashboards validate against Grafana's dashboard schema" \
    node deploy/tools/validate_dashboards.cjs deploy/grafana/dashboards/*.json
  if ((${#rendered[@]})); then
    check "rendered objects validate (schemas, strict fields, kvq policy)" \
      node deploy/tools/validate_k8s.cjs "${rendered[@]}"
  fi
fi

if ((${#rendered[@]})); then
  base="$tmp/base.yaml"
  if [ -x "$KVQ_BINARY" ]; then
    check "manifest flags exist in $KVQ_BINARY" checks flags "$KVQ_BINARY" "$base"
  else
    skip "manifest flags" "no kvq binary at $KVQ_BINARY (bazel build //:kvq)"
  fi
  check "Dockerfile matches the manifests" \
    checks dockerfile deploy/docker/Dockerfile "$base"
fi

# ---- Self-tests: each check must reject a planted error ---------------------------
if ((node_ok)) && [ -f "$tmp/dev.yaml" ]; then
  sed '0,/readinessProbe:/s//readinesProbe:/' "$tmp/dev.yaml" >"$tmp/bad-field.yaml"
  expect_failure "self-test: a misspelled field is rejected" "'\"readinesProbe\"' does not exist" \
    node deploy/tools/validate_k8s.cjs "$tmp/bad-field.yaml"
  sed '0,/containerPort: [0-9]*/s//containerPort: "grpc"/' "$tmp/dev.yaml" >"$tmp/bad-type.yaml"
  expect_failure "self-test: a wrongly typed field is rejected" "must be integer" \
    node deploy/tools/validate_k8s.cjs "$tmp/bad-type.yaml"
fi
if ((node_ok)); then
  sed '0,/"gridPos"/s//"gridPoz"/' deploy/grafana/dashboards/kvq-kv.json >"$tmp/bad-dashboard.json"
  expect_failure "self-test: a misspelled dashboard field is rejected" "'\"gridPoz\"' does not exist" \
    node deploy/tools/validate_dashboards.cjs "$tmp/bad-dashboard.json"
fi
if have promtool; then
  mkdir -p "$tmp/bad-dash"
  sed '0,/"expr": "sum(/s//"expr": "sum((/' deploy/grafana/dashboards/kvq-overview.json \
    >"$tmp/bad-dash/kvq-overview.json"
  expect_failure "self-test: a malformed dashboard expression is rejected" "parse error" \
    bash -c "$CHECKS dashboards $tmp/bad-dash $tmp/bad-dash-rules.yml &&
             promtool check rules $tmp/bad-dash-rules.yml"
  sed 's/> 0.95/> 0.99/' deploy/prometheus/rules/kvq-alerts.yml >"$tmp/bad-rules.yml"
  sed "s|../rules/kvq-alerts.yml|$tmp/bad-rules.yml|" deploy/prometheus/tests/kvq-alerts-test.yml \
    >"$tmp/bad-rules-test.yml"
  expect_failure "self-test: the alert tests catch a changed threshold" "KvqStoreNearCapacity" \
    promtool test rules "$tmp/bad-rules-test.yml"
fi
grep -v '^kvq_kvstore_evictions_total ' deploy/metrics.txt >"$tmp/bad-metrics.txt"
expect_failure "self-test: a metric missing from metrics.txt is caught" "kvq_kvstore_evictions_total" \
  checks metrics "$tmp/bad-metrics.txt" deploy/grafana/dashboards deploy/prometheus/rules/*.yml

echo "deploy: ${passed} passed, ${failed} failed"
((failed == 0))

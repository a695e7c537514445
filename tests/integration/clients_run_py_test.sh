#!/usr/bin/env bash
# Runs a Python end-to-end test (argument 1, a runfiles path) with Debian's
# python3, which has python3-grpcio, python3-grpc-tools and python3-yaml.
# The test's own directory is on sys.path for clients_harness.py, and
# tests/clients for unittest_junit.py (per-case JUnit reports).
set -euo pipefail
test_py="$1"
shift
PYTHON="${KVQ_TEST_PYTHON:-/usr/bin/python3}"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$(dirname "$test_py"):${TEST_SRCDIR}/kvq/tests/clients${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" "$test_py" "$@"

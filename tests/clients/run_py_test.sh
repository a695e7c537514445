#!/usr/bin/env bash
# Runs a Python unit test (argument 1, a runfiles path) with Debian's python3
# (python3-grpcio, python3-grpc-tools), kvq_client and its stubs importable.
set -euo pipefail
test_py="$1"
shift
PYTHON="${KVQ_TEST_PYTHON:-/usr/bin/python3}"
export PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="${TEST_SRCDIR}/kvq/clients/python:${TEST_SRCDIR}/kvq/tests/clients${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" "$test_py" "$@"

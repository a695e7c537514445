#!/usr/bin/env bash
# Installs every Debian package kvq needs to build, test and run. Idempotent:
# packages already present are skipped, and `apt-get update` runs once per
# invocation only when something is missing.
set -euo pipefail

PACKAGES=(
  # Build
  bazel-bootstrap bazel-rules-java g++ clang-format clang-14 libclang-rt-14-dev
  # gRPC / protobuf / abseil / metrics
  libgrpc++-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev prometheus-cpp-dev
  # Tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # Libraries used by kvq
  libxxhash-dev nlohmann-json3-dev libsentencepiece-dev libgoogle-glog-dev
  libopenblas-dev
  # TLS: checking PEM files (libssl-dev); `kvq demo --tls` makes its
  # certificates with the openssl tool
  libssl-dev openssl
  # Deployment checks, the end-to-end Prometheus test and the Python client
  prometheus yamllint python3-yaml python3-grpcio python3-grpc-tools
  # Store benchmark baselines; network namespaces for `kvq bench serve`
  iperf3 redis-server redis-tools iproute2
  # The quality-versus-bits plot (scripts/plot_pareto.sh -> docs/pareto.png)
  gnuplot-nox
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi

# Node.js (with npm) ships with this kind of machine (NodeSource); install
# Debian's only where it is missing, since the two conflict.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi

#!/usr/bin/env bash
# Builds the KV store fuzz target with clang-14 (-fsanitize=fuzzer,address)
# outside Bazel and runs it for SECONDS (default 20). Exit status non-zero if
# the build fails or the fuzzer finds a crash (the reproducer is left in
# $OUT_DIR). Longer runs by hand: tests/fuzz/run_fuzz.sh 600
#
#   tests/fuzz/run_fuzz.sh [SECONDS]
# Environment: OUT_DIR (default /tmp/kvq_fuzz), CLANG (default clang++-14).
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds="${1:-20}"
out="${OUT_DIR:-/tmp/kvq_fuzz}"
clang="${CLANG:-clang++-14}"
mkdir -p "$out/gen" "$out/corpus" "$out/seeds"

if ! command -v "$clang" >/dev/null; then
  echo "run_fuzz.sh: $clang not found (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi

# Rebuild only when a source (or this script) is newer than the binary.
deps=(proto/kvstore.proto proto/common.proto tests/fuzz/run_fuzz.sh kernels/block_format.h kvstore/*.h
      services/store/proto_convert.h services/store/put_session.h
      services/store/chunk_decoder.h)

# The absl libraries Bazel links (third_party/BUILD), minus the flags.
absl_libs=$(grep -o '"-labsl_[a-z_0-9]*"' third_party/BUILD | tr -d '"' | tr '\n' ' ')

srcs=(
  tests/fuzz/store_fuzz.cc
  "$out/gen/proto/kvstore.pb.cc"
  "$out/gen/proto/common.pb.cc"
  services/common/common_proto.cc
  kernels/block_format.cc
  kvstore/block_key.cc
  kvstore/block.cc
  kvstore/block_assembler.cc
  kvstore/internal/lru_kv_store.cc
  services/store/proto_convert.cc
  services/store/put_session.cc
  services/store/chunk_decoder.cc
)
# Built as C++23 on its own, as in kvstore/BUILD.
cxx23_srcs=(kvstore/internal/byte_copy.cc)
stale=0
if [[ ! -x "$out/store_fuzz" ]]; then stale=1; fi
for f in "${deps[@]}" "${srcs[@]:0:1}" "${srcs[@]:2}" "${cxx23_srcs[@]}"; do
  [[ "$f" -nt "$out/store_fuzz" ]] && stale=1
done
if ((stale)); then
  /usr/bin/protoc --proto_path=. --cpp_out="$out/gen" proto/kvstore.proto proto/common.proto
  objs=()
  for f in "${cxx23_srcs[@]}"; do
    obj="$out/$(basename "$f" .cc).o"
    "$clang" -std=c++2b -O1 -g -fsanitize=fuzzer-no-link,address -fno-omit-frame-pointer \
      -I. -c "$f" -o "$obj"
    objs+=("$obj")
  done
  "$clang" -std=c++17 -O1 -g -fsanitize=fuzzer,address -fno-omit-frame-pointer \
    -I. -I"$out/gen" "${srcs[@]}" "${objs[@]}" -o "$out/store_fuzz" \
    -lprotobuf -lxxhash $absl_libs -lpthread
fi

KVQ_FUZZ_WRITE_SEEDS="$out/seeds" "$out/store_fuzz"
# -rss_limit_mb bounds memory; the corpus persists between runs in $out/corpus.
"$out/store_fuzz" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  -artifact_prefix="$out/" -print_final_stats=1 "$out/corpus" "$out/seeds"

#!/usr/bin/env bash
# Builds self-contained binaries of the CUDA kernel test and benchmark for a
# GPU machine that has an NVIDIA driver but no Bazel, Abseil or googletest
# (such as the project's device machine). Abseil, gtest and cudart are linked
# statically; glibc and libstdc++ stay dynamic (a static libstdc++ from gcc 12
# would need glibc 2.36 for arc4random), so the binaries run on x86-64 Linux
# with the glibc and GLIBCXX versions printed at the end (Debian 12, Ubuntu
# 22.04 and later) and a driver for CUDA 13. Same sources and nvcc flags as
# the Bazel build (tools/cuda.bzl).
#
#   kernels/cuda/build_gpu_binaries.sh            # -> bazel-gpu/ (git-ignored)
#   kernels/cuda/build_gpu_binaries.sh OUT_DIR
#
# Then, on the GPU machine: OUT_DIR/cuda_kernels_test and OUT_DIR/cuda_bench
# (see kernels/cuda/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-bazel-gpu}"
mkdir -p "$out/obj"

nvcc=/usr/local/cuda/bin/nvcc
nvcc_flags=(-std=c++17 -O3 -Xcompiler -fPIC
  -gencode arch=compute_90,code=sm_90 -gencode arch=compute_80,code=compute_80
  -I. -I/usr/local/cuda/include)
cxx_flags=(-std=c++17 -O2 -fPIC -I. -I/usr/local/cuda/include)

# Library sources: the CUDA kernels and the parts of //kernels they use.
cu_srcs=(kernels/cuda/*.cu)
cc_srcs=(kernels/cuda/cuda_kernels.cc kernels/cuda/decode_attention.cc
  kernels/cuda/cuda_bench.cc kernels/block_format.cc kernels/checks.cc
  kernels/reference.cc)
test_srcs=(tests/kernels/test_util.cc tests/kernels/cuda_test_data.cc
  tests/kernels/cuda_kernels_test.cc)
bench_srcs=(kernels/cuda/cuda_bench_main.cc)

compile() {  # compile SRC: one object under $out/obj, skipped when up to date
  local src="$1" obj="$out/obj/${1//\//_}.o"
  if [[ -f "$obj" && "$obj" -nt "$src" && -z "$(find kernels tests common -name '*.h' -o -name '*.cuh' -newer "$obj" | head -1)" ]]; then
    return
  fi
  echo "compiling $src"
  if [[ "$src" == *.cu ]]; then
    "$nvcc" "${nvcc_flags[@]}" -c "$src" -o "$obj"
  else
    g++ "${cxx_flags[@]}" -c "$src" -o "$obj"
  fi
}
export -f compile
export out nvcc
export nvcc_flags_s="${nvcc_flags[*]}" cxx_flags_s="${cxx_flags[*]}"
for src in "${cu_srcs[@]}" "${cc_srcs[@]}" "${test_srcs[@]}" "${bench_srcs[@]}"; do
  echo "$src"
done | xargs -P 2 -I{} bash -c 'nvcc_flags=($nvcc_flags_s); cxx_flags=($cxx_flags_s); compile {}'

objs() { for s in "$@"; do echo "$out/obj/${s//\//_}.o"; done; }
static_libs=(-Wl,-Bstatic -Wl,--start-group
  /usr/lib/x86_64-linux-gnu/libabsl_*.a
  -Wl,--end-group -Wl,-Bdynamic
  /usr/local/cuda/lib64/libcudart_static.a -ldl -lrt -lpthread)
lib_objs=($(objs "${cu_srcs[@]}" "${cc_srcs[@]}"))

g++ -o "$out/cuda_kernels_test" $(objs "${test_srcs[@]}") "${lib_objs[@]}" \
  /usr/lib/x86_64-linux-gnu/libgmock.a /usr/lib/x86_64-linux-gnu/libgtest_main.a \
  /usr/lib/x86_64-linux-gnu/libgtest.a "${static_libs[@]}"
g++ -o "$out/cuda_bench" $(objs "${bench_srcs[@]}") "${lib_objs[@]}" "${static_libs[@]}"

for bin in "$out/cuda_kernels_test" "$out/cuda_bench"; do
  glibc=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  glibcxx=$(objdump -T "$bin" | grep -o 'GLIBCXX_[0-9.]*' | sort -uV | tail -1)
  echo "built $bin (needs $glibc, $glibcxx; dynamic: $(ldd "$bin" | awk '{print $1}' | tr '\n' ' '))"
done

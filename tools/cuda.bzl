"""CUDA sources compiled by nvcc from /usr/local/cuda inside the Bazel build."""

NVCC = "/usr/local/cuda/bin/nvcc"

# sm_90 is Hopper (H100/H200), the GPUs kvq is measured on; compute_80 PTX
# keeps it loadable (JIT) on Ampere and later.
NVCC_FLAGS = " ".join([
    "-std=c++17",
    "-O3",
    "-Xcompiler -fPIC",
    "-gencode arch=compute_90,code=sm_90",
    "-gencode arch=compute_80,code=compute_80",
    "-I.",
    "-I/usr/local/cuda/include",
])

def kvq_cuda_library(name, srcs, hdrs = [], deps = [], visibility = None):
    """Compiles each .cu in `srcs` with nvcc into an object a cc_library links.

    Args:
      name: the cc_library's name.
      srcs: .cu files.
      hdrs: headers the .cu files include (also exported by the library).
      deps: cc_library dependencies (headers only are visible to nvcc via -I.).
      visibility: passed to the cc_library.
    """
    objs = []
    for src in srcs:
        obj = src[:-len(".cu")] + ".cu.pic.o"
        native.genrule(
            name = name + "_" + src.replace("/", "_").replace(".", "_"),
            srcs = [src] + hdrs + native.glob(["**/*.h", "**/*.cuh"]),
            outs = [obj],
            cmd = "%s %s -c $(location %s) -o $@" % (NVCC, NVCC_FLAGS, src),
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs,
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart"],
        visibility = visibility,
        alwayslink = 1,
    )

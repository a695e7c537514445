"""CUDA sources compiled by nvcc from /usr/local/cuda inside the Bazel build.

kvq_cuda_library compiles each .cu with nvcc (one action per file, so two
cores compile two files at once) into a position-independent object that a
cc_library links. The .cu files see exactly the headers of `hdrs` and of
the cc_library targets in `deps` (their CcInfo headers and include paths
are the action's inputs), so the action is sandbox-clean.
"""

NVCC = "/usr/local/cuda/bin/nvcc"

# sm_90 is Hopper (H100/H200), the GPUs kvq is measured on; compute_80 PTX
# keeps it loadable (JIT) on Ampere and later.
NVCC_FLAGS = [
    "-std=c++17",
    "-O3",
    "-Xcompiler",
    "-fPIC",
    "-gencode",
    "arch=compute_90,code=sm_90",
    "-gencode",
    "arch=compute_80,code=compute_80",
    "-I/usr/local/cuda/include",
]

def _nvcc_object_impl(ctx):
    contexts = [d[CcInfo].compilation_context for d in ctx.attr.deps]
    headers = depset(ctx.files.hdrs, transitive = [c.headers for c in contexts])
    includes = depset(
        [".", ctx.bin_dir.path, ctx.genfiles_dir.path],
        transitive = [c.includes for c in contexts] +
                     [c.quote_includes for c in contexts] +
                     [c.system_includes for c in contexts],
    )
    args = ctx.actions.args()
    args.add_all(NVCC_FLAGS)
    args.add_all(ctx.attr.copts)
    args.add_all(includes, before_each = "-I")
    args.add("-c", ctx.file.src)
    args.add("-o", ctx.outputs.out)
    ctx.actions.run(
        executable = NVCC,
        arguments = [args],
        inputs = depset([ctx.file.src], transitive = [headers]),
        outputs = [ctx.outputs.out],
        mnemonic = "Nvcc",
        progress_message = "nvcc %s" % ctx.file.src.short_path,
        use_default_shell_env = True,
    )

_nvcc_object = rule(
    implementation = _nvcc_object_impl,
    attrs = {
        "src": attr.label(allow_single_file = [".cu"], mandatory = True),
        "out": attr.output(mandatory = True),
        "hdrs": attr.label_list(allow_files = [".h", ".cuh"]),
        "deps": attr.label_list(providers = [CcInfo]),
        "copts": attr.string_list(),
    },
)

def kvq_cuda_library(name, srcs, hdrs = [], cuda_hdrs = [], deps = [], copts = [], visibility = None):
    """A cc_library whose .cu sources are compiled by nvcc.

    Args:
      name: the cc_library's name.
      srcs: .cu files (compiled by nvcc) and .cc files (compiled by the C++
        toolchain, as in any cc_library).
      hdrs: public headers of the library (exported, seen by nvcc).
      cuda_hdrs: private headers the .cu files include; the .h ones are also
        private headers of the cc_library (for its .cc files).
      deps: cc_library dependencies; their headers and include paths are
        visible to nvcc, and the cc_library links them.
      copts: extra nvcc flags.
      visibility: passed to the cc_library.
    """
    objs = []
    cc_srcs = [s for s in srcs if not s.endswith(".cu")]
    for src in [s for s in srcs if s.endswith(".cu")]:
        obj = src[:-len(".cu")] + ".cu.pic.o"
        _nvcc_object(
            name = name + "_" + src.replace("/", "_").replace(".", "_"),
            src = src,
            out = obj,
            hdrs = hdrs + cuda_hdrs,
            deps = deps,
            copts = copts,
        )
        objs.append(obj)
    native.cc_library(
        name = name,
        srcs = objs + cc_srcs + [h for h in cuda_hdrs if h.endswith(".h")],
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart"],
        visibility = visibility,
        alwayslink = 1,
    )

"""C++ protobuf + gRPC code generation with Debian's protoc and grpc_cpp_plugin."""

def kvq_cc_grpc_library(name, src, deps = [], imports = [], visibility = None):
    """Generates <src>.pb.{h,cc} and <src>.grpc.pb.{h,cc} and a cc_library `name`.

    Args:
      name: the cc_library's name.
      src: one .proto file in this package.
      deps: other cc_library targets the generated code needs (those of the
        .proto files it imports).
      imports: the .proto files `src` imports (protoc reads them).
      visibility: passed to the cc_library.
    """
    base = src[:-len(".proto")]
    outs = [base + ext for ext in [".pb.h", ".pb.cc", ".grpc.pb.h", ".grpc.pb.cc"]]
    native.genrule(
        name = name + "_gen",
        srcs = [src] + imports,
        outs = outs,
        cmd = ("/usr/bin/protoc --proto_path=. --cpp_out=$(GENDIR) --grpc_out=$(GENDIR) " +
               "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin $(location %s)") % src,
    )
    native.cc_library(
        name = name,
        srcs = [base + ".pb.cc", base + ".grpc.pb.cc"],
        hdrs = [base + ".pb.h", base + ".grpc.pb.h"],
        deps = deps + ["//third_party:grpc++", "//third_party:protobuf"],
        visibility = visibility,
    )

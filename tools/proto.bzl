"""C++ protobuf + gRPC code generation with Debian's protoc and grpc_cpp_plugin."""

def kvq_cc_grpc_library(name, src, deps = [], imports = [], prelude = None, visibility = None):
    """Generates <src>.pb.{h,cc} and <src>.grpc.pb.{h,cc} and a cc_library `name`.

    Args:
      name: the cc_library's name.
      src: one .proto file in this package.
      deps: other cc_library targets the generated code needs (those of the
        .proto files it imports).
      imports: the .proto files `src` imports (protoc reads them).
      prelude: a header of this package the generated .grpc.pb.h includes
        first (e.g. gRPC SerializationTraits for its messages).
      visibility: passed to the cc_library.
    """
    base = src[:-len(".proto")]
    outs = [base + ext for ext in [".pb.h", ".pb.cc", ".grpc.pb.h", ".grpc.pb.cc"]]
    cmd = ("/usr/bin/protoc --proto_path=. --cpp_out=$(GENDIR) --grpc_out=$(GENDIR) " +
           "--plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin $(location %s)") % src
    if prelude:
        cmd += " && sed -i '0,/^#include/s|^#include|#include \"%s/%s\"\\n#include|' $(location %s)" % (
            native.package_name(),
            prelude,
            base + ".grpc.pb.h",
        )

        # Unary server handlers deserialize through the SerializationTraits of
        # protobuf's MessageLite base unless given the concrete request type.
        cmd += (" && sed -i '/RpcMethodHandler</s|, ::grpc::protobuf::MessageLite, " +
                "::grpc::protobuf::MessageLite>(|>(|' $(location %s)") % (base + ".grpc.pb.cc")
    native.genrule(
        name = name + "_gen",
        srcs = [src] + imports,
        outs = outs,
        cmd = cmd,
    )
    native.cc_library(
        name = name,
        srcs = [base + ".pb.cc", base + ".grpc.pb.cc"],
        hdrs = [base + ".pb.h", base + ".grpc.pb.h"] + ([prelude] if prelude else []),
        deps = deps + ["//third_party:grpc++", "//third_party:protobuf"],
        visibility = visibility,
    )

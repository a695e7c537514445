#!/usr/bin/env python3
# The golden block keys of tests/kvstore/block_key_test.cc, computed independently
# of kvq: libxxhash XXH3_128bits (ctypes) over the byte string of kvstore/README.md.
# usage: scripts/block_keys.py [FORMAT_VERSION]   (default 4)
import ctypes, struct, sys
lib = ctypes.CDLL("libxxhash.so.0")
class H128(ctypes.Structure): _fields_=[("low64",ctypes.c_uint64),("high64",ctypes.c_uint64)]
lib.XXH3_128bits.restype = H128
lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
def h(b):
    r = lib.XXH3_128bits(b, len(b)); return r.high64, r.low64
seed = h(b"kvq.block_key.v1")
tokens = [1] + [i*7 % 512 for i in range(1,70)]
model = 0x0123456789abcdef
def chain(version, B, bits, G, vb, ko, vo, sc, el, eb):
    prev = seed; out=[]
    for s in range(0, len(tokens), B):
        blk = tokens[s:s+B]
        b = struct.pack("<QQQHHHHHHHHHHI", prev[0], prev[1], model, version, B, bits, G, vb, ko, vo, sc, el, eb, len(blk))
        b += b"".join(struct.pack("<I", t & 0xffffffff) for t in blk)
        prev = h(b); out.append("%016x%016x" % prev)
    return out
v = int(sys.argv[1]) if len(sys.argv) > 1 else 4
print("seed %016x%016x" % seed)
print("quantized", chain(v, 32, 2, 32, 2, 0, 0, 0, 0, 0))
print("format2", chain(v, 32, 4, 32, 2, 82, 20, 1, 0, 0))
print("edge", chain(v, 32, 2, 32, 2, 0, 0, 1, 1, 4))
print("fp16", chain(v, 32, 16, 0, 16, 0, 0, 0, 0, 0))

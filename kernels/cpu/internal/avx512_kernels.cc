// The CPU kernels' inner loops compiled for AVX-512 (F, BW, VL, DQ, VNNI):
// the same source as avx2_kernels.cc, with 32 vector registers and EVEX
// encodings available to the compiler. Reached only after a run-time check.
#define KVQ_ISA_NAMESPACE avx512
#include "kernels/cpu/internal/simd_kernels_impl.inc"

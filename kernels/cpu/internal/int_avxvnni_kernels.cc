// Integer decode attention compiled for AVX-VNNI (256-bit vpdpbusd) + AVX2 + F16C.
// Reached only after a run-time CPU check (kernels/cpu/cpu_kernels.cc).
#define KVQ_INT_NAMESPACE int_avxvnni
#define KVQ_INT_ISA 2
#include "kernels/cpu/internal/int_attention_impl.inc"

// Integer decode attention compiled for AVX-512 F/BW/VL/DQ/VNNI (512-bit vpdpbusd).
// Reached only after a run-time CPU check (kernels/cpu/cpu_kernels.cc).
#define KVQ_INT_NAMESPACE int_avx512vnni
#define KVQ_INT_ISA 3
#include "kernels/cpu/internal/int_attention_impl.inc"

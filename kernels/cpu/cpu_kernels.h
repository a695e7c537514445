// Optimized CPU kernel variants: the KernelSet functions (kernel_set.h) for
// x86 CPUs with AVX2 (+FMA, F16C) and with AVX-512 (F, BW, VL, DQ, VNNI).
// Quantization is bit-identical to the scalar reference; attention agrees
// with it within the tolerance of kernels/cpu/README.md. Attention visits
// each KV head once for all of its query heads, folds the per-channel key
// scales into the query, and splits long contexts across
// AttentionParams::n_threads threads (a pool of blocking workers, or the caller's
// threads through AttentionParams::parallel_for), merging the partial
// softmax states at the end. Shapes the SIMD loops do not cover (head_dim, B or G not
// multiples of 8) are handed to the reference.
//
// The dispatcher (kernels/kernels.h) registers these; use them directly only
// to pick a variant explicitly (tests, benchmarks):
//
//   if (kvq::kernels::cpu::Avx2Supported()) {
//     const kvq::kernels::KernelSet& k = kvq::kernels::cpu::Avx2Kernels();
//     KVQ_RETURN_IF_ERROR(k.decode_attention(params, batch));
//   }
#ifndef KVQ_KERNELS_CPU_CPU_KERNELS_H_
#define KVQ_KERNELS_CPU_CPU_KERNELS_H_

#include "kernels/kernel_set.h"

namespace kvq::kernels::cpu {

// Whether this CPU (and OS) runs the "avx2" variant: AVX2, FMA and F16C.
bool Avx2Supported();
// The variant named "avx2". Calling its functions on a CPU for which
// Avx2Supported() is false is undefined (illegal instruction).
const KernelSet& Avx2Kernels();

// Whether this CPU runs the "avx512" variant: AVX-512 F, BW, VL, DQ and VNNI
// plus everything the avx2 variant needs.
bool Avx512Supported();
// The variant named "avx512".
const KernelSet& Avx512Kernels();

// Integer-dot-product attention over quantized blocks (issue 16;
// kernels/cpu/README.md, "Integer attention"). Their outputs are
// bit-identical to int_portable's on every shape; fp16-only sequences and
// quantization go through the fp32 variant named in parentheses.
// "int_portable" (reference): plain C++, the specification; any CPU.
const KernelSet& IntPortableKernels();
// "int_avx2" (avx2): vpmaddubsw + vpmaddwd; needs Avx2Supported().
const KernelSet& IntAvx2Kernels();
// Whether this CPU has AVX-VNNI (VEX vpdpbusd) plus what avx2 needs.
bool AvxVnniSupported();
// "int_avxvnni" (avx2): 256-bit vpdpbusd; needs AvxVnniSupported().
const KernelSet& IntAvxVnniKernels();
// "int_avx512vnni" (avx512): 512-bit vpdpbusd; needs Avx512Supported().
const KernelSet& IntAvx512VnniKernels();

}  // namespace kvq::kernels::cpu

#endif  // KVQ_KERNELS_CPU_CPU_KERNELS_H_

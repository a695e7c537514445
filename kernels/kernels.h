// The KV-cache kernels' public API: quantizing a layer's K/V into a block part,
// dequantizing it, and decode attention over a cache made of quantized blocks
// followed by fp16 blocks. Every implementation (scalar reference, AVX2,
// AVX-512/VNNI, CUDA) has the signatures of kernels/kernel_set.h; the scalar
// reference (kernels/reference.h) is the specification. This header is the
// dispatcher: it picks the fastest variant this CPU supports.
//
//   const kvq::kernels::KernelSet& k = kvq::kernels::Best();  // chosen once
//   KVQ_RETURN_IF_ERROR(k.quantize_layer(enc, n_kv_heads, head_dim, K, V, part));
//   KVQ_RETURN_IF_ERROR(k.decode_attention(params, batch));
//
// Errors (absl::Status, INVALID_ARGUMENT, nothing written): NaN or Inf input,
// G not dividing head_dim, unsupported bits, mismatched shapes.
#ifndef KVQ_KERNELS_KERNELS_H_
#define KVQ_KERNELS_KERNELS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "kernels/kernel_set.h"

namespace kvq::kernels {

// Every variant this CPU supports, the reference first.
std::vector<const KernelSet*> Available();
// The fastest supported variant, chosen once from CPU features; KVQ_KERNELS=name
// in the environment forces one (an unknown or unsupported name falls back to
// the reference with a warning on stderr).
const KernelSet& Best();
// The scalar reference (the specification).
const KernelSet& Reference();
// The supported variant called `name`, or nullptr when there is none (unknown
// name, or this CPU lacks the variant's instructions).
const KernelSet* FindKernels(absl::string_view name);

// Makes Best() return the variant called `name` from now on (process-wide;
// for `--kernel_variant`; call it at start, before any kernel runs).
// INVALID_ARGUMENT for a name no variant has (the message lists every
// variant), FAILED_PRECONDITION for one this CPU cannot run (the message
// names the CPU, the missing instruction-set features and the variants that
// do run). Nothing changes on error.
absl::Status ForceKernels(absl::string_view name);
// Every variant's name, supported here or not, slowest first.
std::vector<std::string> VariantNames();
// The CPU's model name ("AMD EPYC 9B45", from /proc/cpuinfo or the cpuid
// brand string; "unknown" when neither says).
std::string CpuModelName();

// While alive, Best() returns `set` instead (process-wide), so that one test
// process can run code that calls Best() with every Available() variant:
//
//   for (const KernelSet* set : Available()) {
//     ScopedKernelsOverride use(*set);
//     ... EvaluatePerplexity(...) ...
//   }
//
// Not for concurrent use: create and destroy it while no kernel call runs.
class ScopedKernelsOverride {
 public:
  explicit ScopedKernelsOverride(const KernelSet& set);
  ~ScopedKernelsOverride();
  ScopedKernelsOverride(const ScopedKernelsOverride&) = delete;
  ScopedKernelsOverride& operator=(const ScopedKernelsOverride&) = delete;

 private:
  const KernelSet* previous_;
};

}  // namespace kvq::kernels

#endif  // KVQ_KERNELS_KERNELS_H_

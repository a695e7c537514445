// The dispatcher: a registry of every kernel variant, slowest first, each
// with the CPU check that says whether this machine can run it.
//
// Adding a variant (e.g. AVX-512 in kernels/cpu/): implement the KernelSet
// functions in its own library that depends on //kernels:kernel_set (never on
// this target), add that library to the deps of //kernels:kernels, include
// its header below and add one line to kVariants. tests/kernels/
// all_variants_test.cc then checks it against the reference automatically.
#include "kernels/kernels.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "absl/strings/string_view.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernel_set.h"
#include "kernels/reference.h"

namespace kvq::kernels {
namespace {

bool Always() { return true; }

// Set by ScopedKernelsOverride; nullptr: Best() chooses.
std::atomic<const KernelSet*> g_override{nullptr};

struct Variant {
  const KernelSet& (*kernels)();
  bool (*supported)();  // Whether this CPU has the instructions it needs.
};

// Slowest first; Best() takes the last supported one. The integer variants
// (issue 16) come before the fp32 ones: measured on a Zen 5 they are still
// slower than avx512/avx2 on kivi2 (docs/performance.md, "Integer decode
// attention"), so Best() keeps the fp32 variants until they are not; force
// one with KVQ_KERNELS or ForceKernels().
constexpr Variant kVariants[] = {
    {&reference::Kernels, &Always},
    {&cpu::IntPortableKernels, &Always},
    {&cpu::IntAvx2Kernels, &cpu::Avx2Supported},
    {&cpu::IntAvxVnniKernels, &cpu::AvxVnniSupported},
    {&cpu::IntAvx512VnniKernels, &cpu::Avx512Supported},
    {&cpu::Avx2Kernels, &cpu::Avx2Supported},
    {&cpu::Avx512Kernels, &cpu::Avx512Supported},
};

const KernelSet& ChooseBest() {
  if (const char* name = std::getenv("KVQ_KERNELS"); name != nullptr && *name != '\0') {
    if (const KernelSet* set = FindKernels(name)) return *set;
    std::fprintf(stderr,
                 "kvq: KVQ_KERNELS=%s names no kernel variant this CPU supports; "
                 "using the reference\n",
                 name);
    return Reference();
  }
  return *Available().back();
}

}  // namespace

std::vector<const KernelSet*> Available() {
  std::vector<const KernelSet*> sets;
  for (const Variant& v : kVariants) {
    if (v.supported()) sets.push_back(&v.kernels());
  }
  return sets;
}

const KernelSet& Best() {
  if (const KernelSet* set = g_override.load(std::memory_order_acquire)) return *set;
  static const KernelSet& best = ChooseBest();
  return best;
}

ScopedKernelsOverride::ScopedKernelsOverride(const KernelSet& set)
    : previous_(g_override.exchange(&set)) {}

ScopedKernelsOverride::~ScopedKernelsOverride() { g_override.store(previous_); }

const KernelSet& Reference() { return reference::Kernels(); }

const KernelSet* FindKernels(absl::string_view name) {
  for (const KernelSet* set : Available()) {
    if (set->name == name) return set;
  }
  return nullptr;
}

}  // namespace kvq::kernels

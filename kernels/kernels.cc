// The dispatcher: a registry of every kernel variant, slowest first, each
// with the CPU check that says whether this machine can run it.
//
// Adding a variant (e.g. AVX-512 in kernels/cpu/): implement the KernelSet
// functions in its own library that depends on //kernels:kernel_set (never on
// this target), add that library to the deps of //kernels:kernels, include
// its header below and add one line to kVariants. tests/kernels/
// all_variants_test.cc then checks it against the reference automatically.
#include "kernels/kernels.h"

#include <cpuid.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/kernel_set.h"
#include "kernels/reference.h"

namespace kvq::kernels {
namespace {

bool Always() { return true; }

// Set by ScopedKernelsOverride; nullptr: Best() chooses.
std::atomic<const KernelSet*> g_override{nullptr};
// Set by ForceKernels; nullptr: Best() chooses.
std::atomic<const KernelSet*> g_forced{nullptr};

struct Variant {
  const KernelSet& (*kernels)();
  bool (*supported)();  // Whether this CPU has the instructions it needs.
  const char* needs;    // __builtin_cpu_supports names, comma-separated
};

// What this CPU lacks of `needs` (__builtin_cpu_supports wants literals).
std::vector<std::string> Missing(absl::string_view needs) {
  __builtin_cpu_init();
  struct Feature {
    const char* name;
    bool present;
  };
  const Feature features[] = {
      {"avx2", static_cast<bool>(__builtin_cpu_supports("avx2"))},
      {"fma", static_cast<bool>(__builtin_cpu_supports("fma"))},
      {"f16c", static_cast<bool>(__builtin_cpu_supports("f16c"))},
      {"avxvnni", static_cast<bool>(__builtin_cpu_supports("avxvnni"))},
      {"avx512f", static_cast<bool>(__builtin_cpu_supports("avx512f"))},
      {"avx512bw", static_cast<bool>(__builtin_cpu_supports("avx512bw"))},
      {"avx512vl", static_cast<bool>(__builtin_cpu_supports("avx512vl"))},
      {"avx512dq", static_cast<bool>(__builtin_cpu_supports("avx512dq"))},
      {"avx512vnni", static_cast<bool>(__builtin_cpu_supports("avx512vnni"))},
  };
  std::vector<std::string> missing;
  for (const Feature& f : features) {
    if (!f.present && absl::StrContains(absl::StrCat(",", needs, ","),
                                        absl::StrCat(",", f.name, ","))) {
      missing.push_back(f.name);
    }
  }
  return missing;
}

// Slowest first; Best() takes the last supported one. The integer variants
// come before the fp32 ones: int_avx2 and int_avxvnni are slower than avx2
// on kivi2 (1.39x and 1.06x its CPU time, cache-resident, Zen 5; no CPU
// without AVX-512 measured). int_avx512vnni is faster than avx512 on one
// head_dim-128 sequence (0.8x) but not on what a decode step calls: 8
// sequences of 2048 tokens with an fp16 tail, 1.7x avx512's time at head_dim
// 64 (the serving benchmark's model; its 2-group blocks miss the integer fast
// path) and 1.0x at head_dim 128, and `kvq bench model --weights int8`
// decodes kivi2 at 0.6x avx512's tokens/s at batch 8 and 32
// (docs/performance.md, "Integer decode attention"). So avx512 comes last.
// Force another one with --kernel_variant, KVQ_KERNELS or ForceKernels().
constexpr Variant kVariants[] = {
    {&reference::Kernels, &Always, ""},
    {&cpu::IntPortableKernels, &Always, ""},
    {&cpu::IntAvx2Kernels, &cpu::Avx2Supported, "avx2,fma,f16c"},
    {&cpu::IntAvxVnniKernels, &cpu::AvxVnniSupported, "avx2,fma,f16c,avxvnni"},
    {&cpu::IntAvx512VnniKernels, &cpu::Avx512Supported,
     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"},
    {&cpu::Avx2Kernels, &cpu::Avx2Supported, "avx2,fma,f16c"},
    {&cpu::Avx512Kernels, &cpu::Avx512Supported,
     "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni"},
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
  if (const KernelSet* set = g_forced.load(std::memory_order_acquire)) return *set;
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

std::vector<std::string> VariantNames() {
  std::vector<std::string> names;
  for (const Variant& v : kVariants) names.push_back(v.kernels().name);
  return names;
}

absl::Status ForceKernels(absl::string_view name) {
  std::vector<std::string> available;
  for (const KernelSet* set : Available()) available.push_back(set->name);
  for (const Variant& v : kVariants) {
    if (v.kernels().name != name) continue;
    if (!v.supported()) {
      return absl::FailedPreconditionError(
          absl::StrCat("kernel variant '", name, "' needs CPU features this CPU (",
                       CpuModelName(), ") lacks: ", absl::StrJoin(Missing(v.needs), ", "),
                       "; variants this CPU runs: ", absl::StrJoin(available, ", ")));
    }
    g_forced.store(&v.kernels(), std::memory_order_release);
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("no kernel variant is called '", name,
                   "'; variants: ", absl::StrJoin(VariantNames(), ", "),
                   " (this CPU runs: ", absl::StrJoin(available, ", "), ")"));
}

std::string CpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "model name")) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) break;
      const std::string name(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      if (!name.empty()) return name;
    }
  }
  unsigned int regs[12];
  unsigned int max_ext = __get_cpuid_max(0x80000000u, nullptr);
  if (max_ext >= 0x80000004u) {
    for (unsigned int i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002u + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2],
                  &regs[4 * i + 3]);
    }
    char brand[49];
    std::memcpy(brand, regs, 48);
    brand[48] = '\0';
    const std::string name(absl::StripAsciiWhitespace(brand));
    if (!name.empty()) return name;
  }
  return "unknown";
}

}  // namespace kvq::kernels

// Picks the copy of the CPU kernels this process runs (src/cpu/backend.h): the best instruction
// set the machine supports, or a lower one named by NAPO_CPU_ISA (for comparing the paths on one
// machine). A request the machine cannot run, or an unknown name, is not followed and says why.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../cpu/backend.h"

namespace napo {

namespace cpu {
#if defined(NAPO_CPU_ISAS_X86)
namespace avx512 { extern const CpuBackend backendTable; }
namespace avx2 { extern const CpuBackend backendTable; }
#endif
namespace generic { extern const CpuBackend backendTable; }
}  // namespace cpu

namespace {

struct IsaChoice {
  const cpu::CpuBackend* backend = nullptr;
  std::string supported;
  std::string note;
};

struct Candidate {
  const cpu::CpuBackend* backend;
  bool runs;
};

IsaChoice choose() {
#if defined(NAPO_CPU_ISAS_X86)
  __builtin_cpu_init();
  // The x86-64 levels the copies are compiled for (-march=x86-64-v4 / -v3); libgcc also checks
  // that the OS saves the vector registers.
  const Candidate candidates[] = {
      {&cpu::avx512::backendTable, __builtin_cpu_supports("x86-64-v4") != 0},
      {&cpu::avx2::backendTable, __builtin_cpu_supports("x86-64-v3") != 0},
      {&cpu::generic::backendTable, true},
  };
#else
  const Candidate candidates[] = {{&cpu::generic::backendTable, true}};
#endif
  IsaChoice choice;
  for (const Candidate& candidate : candidates) {
    if (!candidate.runs) continue;
    if (!choice.supported.empty()) choice.supported += ",";
    choice.supported += candidate.backend->isa;
    if (!choice.backend) choice.backend = candidate.backend;
  }
  const char* requested = std::getenv("NAPO_CPU_ISA");
  if (!requested || !*requested) return choice;
  for (const Candidate& candidate : candidates) {
    if (std::strcmp(requested, candidate.backend->isa) != 0) continue;
    if (candidate.runs) {
      choice.backend = candidate.backend;
    } else {
      choice.note = std::string("NAPO_CPU_ISA=") + requested + " is not supported by this CPU; using " +
                    choice.backend->isa;
    }
    return choice;
  }
  choice.note = std::string("NAPO_CPU_ISA=") + requested + " is not one of " + choice.supported + "; using " +
                choice.backend->isa;
  return choice;
}

const IsaChoice& isaChoice() {
  static const IsaChoice choice = choose();
  return choice;
}

}  // namespace

const cpu::CpuBackend& cpuBackend() { return *isaChoice().backend; }
const char* cpuIsaSupported() { return isaChoice().supported.c_str(); }
const char* cpuIsaNote() { return isaChoice().note.c_str(); }

}  // namespace napo

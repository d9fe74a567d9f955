// Every file of src/cpu/ is compiled once per instruction set, with NAPO_CPU_ISA naming the copy
// (CMakeLists.txt). Each copy's code, headers' inline functions and templates included, lives in
// an inline namespace of that name, so no symbol of one copy can stand in for another's at link
// time and a machine without AVX-512 never runs an AVX-512 instruction.
#pragma once

#ifndef NAPO_CPU_ISA
#error "src/cpu/ is compiled once per instruction set with NAPO_CPU_ISA set; see CMakeLists.txt"
#endif

#define NAPO_CPU_ISA_BEGIN inline namespace NAPO_CPU_ISA {
#define NAPO_CPU_ISA_END }
#define NAPO_CPU_ISA_STRINGIFY(x) #x
#define NAPO_CPU_ISA_STRING(x) NAPO_CPU_ISA_STRINGIFY(x)
#define NAPO_CPU_ISA_NAME NAPO_CPU_ISA_STRING(NAPO_CPU_ISA)

// The suites of the host emulation harness defined outside harness_tests.cpp.
#pragma once

#include "op_checks.h"

// The model layers' kernels against the CPU backend (harness_layer_tests.cpp).
void layerKernelSuites(napo_tests::Checks& checks);

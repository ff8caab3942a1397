// Tests that run ranks on the CPU need the Gloo backend. Debian's LibTorch (the CPU machines and
// CI) comes with gloo's headers, so builds against it have the backend; a pip LibTorch carries
// none, so a build against one (a GPU host's) has no Gloo backend and uses NCCL
// (src/dist/CMakeLists.txt). There these tests skip; Gloo.BuiltIn still requires the backend of
// every build against a CPU-only LibTorch.
#pragma once

#include <gtest/gtest.h>

#include "grpo/dist/process_group.h"

#define GRPO_REQUIRE_GLOO()                                                                     \
  do {                                                                                          \
    if (!grpo::dist::gloo_available()) {                                                        \
      GTEST_SKIP() << "no Gloo backend in this build (a pip LibTorch carries no gloo headers; " \
                      "GPU hosts use NCCL)";                                                    \
    }                                                                                           \
  } while (0)

#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds (warnings as errors, kernels compiled by
# nvcc when the CUDA toolkit is present) and runs every CTest test. GPU tests skip without a GPU.
# Usage: scripts/test.sh [ctest args...]   e.g. scripts/test.sh -L cpu -R config
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${GRPO_BUILD_DIR:-build}
# Idle OpenMP threads sleep instead of spinning: tests run two at a time on small machines
# (docs/rollout.md, "Speed on the CPU").
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
CMAKE_ARGS="-DGRPO_WERROR=ON -DGRPO_BUILD_TESTS=ON ${CMAKE_ARGS:-}" scripts/setup.sh "$BUILD_DIR"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"

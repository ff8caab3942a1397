#!/usr/bin/env bash
# Prints the manifest of programs built for a GPU host (.gpu_prebuilt/manifest.txt): the torch
# version and CUDA architecture they were built for and a short hash of the files a build
# compiles (C++ and CUDA sources, headers, CMake files under CMakeLists.txt, cmake/, include/,
# kernels/, src/ and tests/). The hash is read from the file system, not from git, so that it
# gives the same answer in a checkout here and in the copy of the working tree the device tool
# sends (which may have no .git). scripts/gpu_prebuild.sh writes it; scripts/gpu_check.sh uses
# those programs only when it prints the same for the machine it runs on.
# Usage: bash scripts/gpu_manifest.sh TORCH_VERSION ARCH
set -euo pipefail
cd "$(dirname "$0")/.."
(($# == 2)) || {
  echo "usage: bash scripts/gpu_manifest.sh TORCH_VERSION ARCH" >&2
  exit 2
}
sources=$(find CMakeLists.txt cmake include kernels src tests -type f \
  \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' \
  -o -name '*.cmake' -o -name 'CMakeLists.txt' -o -name '*.in' \) -print0 |
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
printf 'torch %s\narch %s\nsources %s\n' "$1" "$2" "$sources"

#!/usr/bin/env bash
# Prints a short hash of the files a build compiles (C++ and CUDA sources, headers, CMake files
# under CMakeLists.txt, cmake/, include/, kernels/, src/ and tests/), read from the file system,
# not from git, so that it gives the same answer in a checkout here and in the copy of the
# working tree the device tool sends (which may have no .git). scripts/gpu_prebuild.sh writes it
# into .gpu_prebuilt/manifest.txt; scripts/gpu_check.sh uses those binaries only when it matches.
set -euo pipefail
cd "$(dirname "$0")/.."
find CMakeLists.txt cmake include kernels src tests -type f \
  \( -name '*.cpp' -o -name '*.h' -o -name '*.hpp' -o -name '*.cu' -o -name '*.cuh' \
  -o -name '*.cmake' -o -name 'CMakeLists.txt' -o -name '*.in' \) -print0 |
  LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16

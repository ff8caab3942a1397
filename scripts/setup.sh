#!/usr/bin/env bash
# Installs grpo's build and test dependencies from Debian's packages and builds it in Release.
# Idempotent: re-running only rebuilds what changed. Usage: scripts/setup.sh [build-dir]
# Environment: GRPO_SKIP_APT=1 skips the package step; CMAKE_ARGS adds configure options.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}

PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3 clang-format
  libtorch-dev libgloo-dev libopenblas0-openmp
  libspdlog-dev nlohmann-json3-dev libcli11-dev libyaml-cpp-dev
  libsentencepiece-dev libgtest-dev libgmock-dev
  libpcre2-dev libicu-dev zlib1g-dev
  bubblewrap libseccomp-dev
)

if [ "${GRPO_SKIP_APT:-0}" != "1" ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# The CUDA toolkit, when present, lets GRPO_CUDA=AUTO compile kernels/ with nvcc.
[ -x /usr/local/cuda/bin/nvcc ] && export PATH="/usr/local/cuda/bin:$PATH"

# shellcheck disable=SC2086
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-} >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
echo "setup: built $BUILD_DIR/grpo"

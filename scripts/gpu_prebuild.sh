#!/usr/bin/env bash
# Builds here, on the CPU machine, the two programs a GPU check runs (grpo and test_ops_cuda)
# against the LibTorch of the GPU image's PyTorch (the same version, CUDA variant included,
# installed from PyPI into .venv-gpu-torch), for the GPU's architecture alone, and puts them,
# stripped, with a manifest into .gpu_prebuilt/ (git-ignored) for the device tool to carry
# (`carry: [".gpu_deps", ".gpu_prebuilt"]`). scripts/gpu_check.sh then skips its configure and
# build, minutes of device time, when the manifest's torch version and source hash match that
# machine and the programs start there with every symbol bound; otherwise it builds as before.
# The programs link the C++ dependencies of this machine (bookworm's, the same .debs
# scripts/gpu_deps.sh carries) and run there with the carried ones.
# Usage: bash scripts/gpu_prebuild.sh [TORCH_VERSION]   (default 2.11.0: the H200 image's)
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-2.11.0}
arch=${GRPO_CUDA_ARCHITECTURES:-90}
venv=.venv-gpu-torch
build="build-gpu-prebuilt"
dest=.gpu_prebuilt
if ! "$venv/bin/python" -c "import sys, torch
sys.exit(torch.__version__.split('+')[0] != '$version')" 2> /dev/null; then
  echo "gpu_prebuild: installing torch==$version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==$version"
fi
torch_dir=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
torch_version=$("$venv/bin/python" -c 'import torch; print(torch.__version__)')
echo "gpu_prebuild: torch $torch_version, sm_$arch, into $build"
# No CBLAS: the fused CPU attention is not what a GPU run uses, and the image may lack libblas.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGRPO_CUDA=ON -DGRPO_WERROR=ON \
  -DGRPO_BUILD_TESTS=ON -DGRPO_CUDA_ARCHITECTURES="$arch" -DCMAKE_PREFIX_PATH="$torch_dir" \
  -DGRPO_WITH_CBLAS=OFF > /dev/null
cmake --build "$build" -j "$(nproc)" --target grpo test_ops_cuda grpo_sentencepiece
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
strip -o "$dest.tmp/grpo" "$build/grpo"
strip -o "$dest.tmp/test_ops_cuda" "$build/tests/ops/test_ops_cuda"
# grpo loads its SentencePiece module by path (GRPO_SENTENCEPIECE_MODULE, set by gpu_check.sh).
strip -o "$dest.tmp/libgrpo_sentencepiece.so" "$build/src/text/libgrpo_sentencepiece.so"
bash scripts/gpu_manifest.sh "$torch_version" "$arch" > "$dest.tmp/manifest.txt"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
ls -l "$dest"
cat "$dest/manifest.txt"

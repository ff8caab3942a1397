#!/usr/bin/env bash
# One prepared GPU check (docs/kernels.md): configure and build against the installed PyTorch,
# run the `gpu` tests (kernels vs the ATen reference), then `grpo bench kernels`. Outputs go to
# $OUT (or ./gpu_check_out). Meant to finish in under ~8 minutes on one GPU host.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
build="${GRPO_GPU_BUILD:-build-gpu}"
jobs="${GRPO_JOBS:-$(nproc)}"
python="${PYTHON:-python3}"
{
  nvidia-smi || true
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} > "$out/env.txt" 2>&1
# The torch package folder itself (its cmake config finds libtorch.so next to the headers).
torch_dir="$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
gen=(); command -v ninja > /dev/null && gen=(-G Ninja)
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGRPO_CUDA=ON -DGRPO_WERROR=ON \
  -DGRPO_BUILD_TESTS=ON -DCMAKE_PREFIX_PATH="$torch_dir" > "$out/configure.log" 2>&1 \
  || { echo "configure failed: $out/configure.log"; tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j "$jobs" --target grpo_kernels test_ops_cuda grpo > "$out/build.log" 2>&1 \
  || { echo "build failed: $out/build.log"; grep -m 20 -E "error|FAILED" "$out/build.log"; exit 1; }
status=0
(cd "$build" && timeout 300 ctest -L gpu --output-on-failure) > "$out/ctest_gpu.log" 2>&1 || status=1
tail -40 "$out/ctest_gpu.log"
timeout 180 "$build/grpo" bench kernels --repeat 10 > "$out/bench_kernels.txt" 2>&1 || status=1
cat "$out/bench_kernels.txt"
exit $status

#!/usr/bin/env bash
# One prepared GPU check (docs/kernels.md): configure and build against the installed PyTorch,
# run the `gpu` tests (kernels vs the ATen reference), then `grpo bench kernels`. Outputs go to
# $OUT (or ./gpu_check_out). Meant to finish in under ~8 minutes on a 16-core GPU host.
# The test binary is built and run before the CLI (the larger build), so the test result is in
# even when the bench's build or run runs out of time. Exit status 0 only when every gpu test
# ran (none skipped) and passed and the bench ran.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
build="${GRPO_GPU_BUILD:-build-gpu}"
t0=$SECONDS
stamp() { echo "[gpu_check $((SECONDS - t0)) s] $*"; }
# The optional diagnostics below start only while the elapsed time is under these marks, so a
# bad run still ends in about 8 minutes.
elapsed() { echo $((SECONDS - t0)); }

# Build jobs: the cores, but at most one per ~2 GB of free memory (a LibTorch TU takes 1-2 GB).
cores=$(nproc)
mem_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo 2> /dev/null || echo 0)
jobs=$cores
if ((mem_gb > 0 && mem_gb / 2 < jobs)); then jobs=$((mem_gb / 2)); fi
((jobs >= 1)) || jobs=1
jobs="${GRPO_JOBS:-$jobs}"

# A Python with torch: $PYTHON, else the repository's .venv, else python3.
if [[ -n "${PYTHON:-}" ]]; then
  python=$PYTHON
elif [[ -x .venv/bin/python ]]; then
  python=.venv/bin/python
else
  python=python3
fi
{
  nvidia-smi || true
  "$python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
"available", torch.cuda.is_available())'
  command -v nvcc || ls /usr/local/cuda/bin/nvcc
  cmake --version | head -1
  echo "jobs $jobs"
} > "$out/env.txt" 2>&1
cat "$out/env.txt"
# The torch package folder itself (its cmake config finds libtorch.so next to the headers).
torch_dir="$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')" || {
  echo "no torch importable by $python (set PYTHON)"
  exit 1
}
# Only the architecture of the GPU present ("9.0" -> 90): half the nvcc time of "80;90".
arch="${GRPO_CUDA_ARCHITECTURES:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader \
  2> /dev/null | head -1 | tr -d ' .')}"
arch_flag=()
[[ "$arch" =~ ^[0-9]+[a-z]?$ ]] && arch_flag=(-DGRPO_CUDA_ARCHITECTURES="$arch")
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)
stamp "configure (arch ${arch:-80;90}, $jobs jobs)"
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGRPO_CUDA=ON -DGRPO_WERROR=ON \
  -DGRPO_BUILD_TESTS=ON "${arch_flag[@]}" -DCMAKE_PREFIX_PATH="$torch_dir" \
  > "$out/configure.log" 2>&1 || {
  echo "configure failed: $out/configure.log"
  tail -30 "$out/configure.log"
  exit 1
}
grep -E "grpo: (LibTorch|kernels)" "$out/configure.log"
stamp "build test_ops_cuda"
cmake --build "$build" -j "$jobs" --target test_ops_cuda > "$out/build_tests.log" 2>&1 || {
  echo "build failed: $out/build_tests.log"
  grep -m 20 -E "error|FAILED" "$out/build_tests.log"
  exit 1
}
status=0
stamp "ctest -L gpu"
(cd "$build" && timeout 240 ctest -L gpu --output-on-failure) > "$out/ctest_gpu.log" 2>&1 \
  || status=1
tail -40 "$out/ctest_gpu.log"
# A skipped gpu test (no device visible, kernels not linked) is a failed check, not a pass.
if grep -qiE "skipped|No tests were found" "$out/ctest_gpu.log"; then
  echo "gpu tests skipped or missing: see $out/ctest_gpu.log"
  status=1
fi
# Kernel launches are asynchronous: a fault shows up at some later call. Rerun only the failed
# tests with synchronous launches (the error then names the launching wrapper) and, when
# present, under compute-sanitizer memcheck (names the kernel and the bad address).
failed=$(grep -oE "CudaKernels\.[A-Za-z0-9_]+ \((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)" \
  "$out/ctest_gpu.log" | cut -d' ' -f1 | sort -u | paste -sd: -)
if [[ -n "$failed" ]] && (($(elapsed) < 330)); then
  stamp "rerun failed tests with CUDA_LAUNCH_BLOCKING=1: $failed"
  CUDA_LAUNCH_BLOCKING=1 timeout 120 "$build/tests/ops/test_ops_cuda" --gtest_filter="$failed" \
    > "$out/failed_blocking.log" 2>&1
  grep -E "Failure|error|Error|FAILED|kernel|\.cpp:[0-9]+" "$out/failed_blocking.log" | head -40
  if (($(elapsed) < 330)) && { command -v compute-sanitizer > /dev/null ||
    [[ -x /usr/local/cuda/bin/compute-sanitizer ]]; }; then
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    stamp "compute-sanitizer memcheck on $failed"
    timeout 120 "$sanitizer" --tool memcheck --print-limit 20 \
      "$build/tests/ops/test_ops_cuda" --gtest_filter="$failed" > "$out/failed_memcheck.log" 2>&1
    grep -E "=========" "$out/failed_memcheck.log" | head -40
  fi
fi
stamp "build grpo"
if cmake --build "$build" -j "$jobs" --target grpo > "$out/build_cli.log" 2>&1; then
  stamp "grpo bench kernels"
  timeout 180 "$build/grpo" bench kernels --repeat 10 > "$out/bench_kernels.txt" 2>&1 || status=1
  cat "$out/bench_kernels.txt"
else
  echo "build of grpo failed: $out/build_cli.log"
  grep -m 20 -E "error|FAILED" "$out/build_cli.log"
  status=1
fi
stamp "done, status $status"
exit $status

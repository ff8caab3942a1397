#!/usr/bin/env bash
# One prepared GPU check (docs/kernels.md): configure and build against the installed PyTorch,
# run the `gpu` tests (kernels vs the ATen reference), then `grpo bench kernels`. Outputs go to
# $OUT (or ./gpu_check_out). Meant to finish in under ~8 minutes on a 16-core GPU host; with
# GRPO_GPU_RECIPE set, a training recipe then uses the time left (see the end).
# The test binary is built and run before the CLI (the larger build), so the test result is in
# even when the bench's build or run runs out of time. Exit status 0 only when every gpu test
# ran (none skipped) and passed and the bench ran. The C++ dependencies (spdlog, yaml-cpp, ...)
# come from .gpu_deps/*.deb when that folder is there (scripts/gpu_deps.sh, carried by the
# device tool): unpacked into a private prefix and preferred to whatever the image has.
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
# Carried dependencies: Debian bookworm .debs unpacked with dpkg -x into $deps (never into /),
# used by the configure and the link and, through LD_LIBRARY_PATH, by the test and grpo runs.
deps="${GRPO_DEPS_PREFIX:-/tmp/gpu_deps}"
prefix_path="$torch_dir"
dep_flags=()
run_env=()
if compgen -G ".gpu_deps/*.deb" > /dev/null; then
  stamp "unpack .gpu_deps into $deps"
  [[ "$deps" == /?*/* ]] || {
    echo "GRPO_DEPS_PREFIX=$deps: want a private folder such as /tmp/gpu_deps, not a system one"
    exit 1
  }
  rm -rf "${deps:?}" && mkdir -p "$deps" || exit 1
  for f in .gpu_deps/*.deb; do
    if command -v dpkg > /dev/null; then
      dpkg -x "$f" "$deps"
    else # no dpkg: the data member of the ar archive
      m=$(ar t "$f" | grep "^data\.tar")
      case "$m" in
        *.xz) z=-J ;; *.zst) z=--zstd ;; *.gz) z=-z ;; *) z= ;;
      esac
      ar p "$f" "$m" | tar -x $z -C "$deps"
    fi || {
      echo "cannot unpack $f"
      exit 1
    }
  done
  lib="$deps/usr/lib/x86_64-linux-gnu"
  # zlib1g installs into /lib: merge that into usr/lib as a merged-/usr system does.
  if [[ -d "$deps/lib" && ! -L "$deps/lib" ]]; then
    cp -a "$deps/lib/." "$deps/usr/lib/" && rm -rf "${deps:?}/lib" && ln -s usr/lib "$deps/lib"
  fi
  # Absolute links (libz.so -> /lib/x86_64-linux-gnu/libz.so.1.2.13) point into the prefix.
  find "$deps" -type l -lname "/*" | while read -r l; do
    t=$(readlink "$l")
    if [[ -e "$deps$t" ]]; then ln -sfn "$deps$t" "$l"; fi
  done
  # The .pc files say prefix=/usr, libdir=/usr/lib/..., -I/usr/include.
  sed -i -E "s#(=[[:space:]]*|-I|-L)/usr(/|\$|[[:space:]])#\1$deps/usr\2#g" \
    "$lib"/pkgconfig/*.pc "$deps"/usr/share/pkgconfig/*.pc
  # The carried pkgconf, reading the carried .pc files alone.
  mkdir -p "$deps/bin"
  cat > "$deps/bin/pkg-config" << WRAPPER
#!/bin/sh
export LD_LIBRARY_PATH="$lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PKG_CONFIG_LIBDIR="$lib/pkgconfig:$deps/usr/share/pkgconfig"
unset PKG_CONFIG_PATH
exec "$deps/usr/bin/pkgconf" "\$@"
WRAPPER
  chmod +x "$deps/bin/pkg-config"
  # The CMake configs are relocatable; the _DIR and _ROOT hints make the carried ones win, also
  # where the compiler reports no library architecture (lib/x86_64-linux-gnu is then not searched).
  prefix_path="$deps/usr;$torch_dir"
  dep_flags=(-DPKG_CONFIG_EXECUTABLE="$deps/bin/pkg-config"
    -Dspdlog_DIR="$lib/cmake/spdlog" -Dfmt_DIR="$lib/cmake/fmt"
    -Dyaml-cpp_DIR="$lib/cmake/yaml-cpp" -DGTest_DIR="$lib/cmake/GTest"
    -DCLI11_DIR="$deps/usr/share/cmake/CLI11"
    -Dnlohmann_json_DIR="$deps/usr/share/cmake/nlohmann_json"
    -DICU_ROOT="$deps/usr" -DZLIB_ROOT="$deps/usr"
    -DCMAKE_INCLUDE_PATH="$deps/usr/include" -DCMAKE_LIBRARY_PATH="$lib")
  run_env=(env "LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
  debs=(.gpu_deps/*.deb)
  echo "carried deps: ${#debs[@]} packages in $deps" | tee -a "$out/env.txt"
fi
# Only the architecture of the GPU present ("9.0" -> 90): half the nvcc time of "80;90".
arch="${GRPO_CUDA_ARCHITECTURES:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader \
  2> /dev/null | head -1 | tr -d ' .')}"
arch_flag=()
[[ "$arch" =~ ^[0-9]+[a-z]?$ ]] && arch_flag=(-DGRPO_CUDA_ARCHITECTURES="$arch")
gen=()
command -v ninja > /dev/null && gen=(-G Ninja)
stamp "configure (arch ${arch:-80;90}, $jobs jobs)"
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGRPO_CUDA=ON -DGRPO_WERROR=ON \
  -DGRPO_BUILD_TESTS=ON "${arch_flag[@]}" -DCMAKE_PREFIX_PATH="$prefix_path" "${dep_flags[@]}" \
  > "$out/configure.log" 2>&1 || {
  echo "configure failed: $out/configure.log"
  tail -30 "$out/configure.log"
  exit 1
}
grep -E "grpo: (LibTorch|kernels)" "$out/configure.log"
status=0
if [[ -z "${GRPO_GPU_RECIPE_ONLY:-}" ]]; then
  stamp "build test_ops_cuda"
  cmake --build "$build" -j "$jobs" --target test_ops_cuda > "$out/build_tests.log" 2>&1 || {
    echo "build failed: $out/build_tests.log"
    grep -m 20 -E "error|FAILED" "$out/build_tests.log"
    exit 1
  }
  stamp "ctest -L gpu"
  (cd "$build" && timeout 240 "${run_env[@]}" ctest -L gpu --output-on-failure) > "$out/ctest_gpu.log" 2>&1 \
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
    CUDA_LAUNCH_BLOCKING=1 timeout 120 "${run_env[@]}" "$build/tests/ops/test_ops_cuda" --gtest_filter="$failed" \
      > "$out/failed_blocking.log" 2>&1
    grep -E "Failure|error|Error|FAILED|kernel|\.cpp:[0-9]+" "$out/failed_blocking.log" | head -40
    if (($(elapsed) < 330)) && { command -v compute-sanitizer > /dev/null ||
      [[ -x /usr/local/cuda/bin/compute-sanitizer ]]; }; then
      sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
      stamp "compute-sanitizer memcheck on $failed"
      timeout 120 "${run_env[@]}" "$sanitizer" --tool memcheck --print-limit 20 \
        "$build/tests/ops/test_ops_cuda" --gtest_filter="$failed" > "$out/failed_memcheck.log" 2>&1
      grep -E "=========" "$out/failed_memcheck.log" | head -40
    fi
  fi
fi
stamp "build grpo"
if cmake --build "$build" -j "$jobs" --target grpo > "$out/build_cli.log" 2>&1; then
  if [[ -z "${GRPO_GPU_RECIPE_ONLY:-}" ]]; then
    stamp "grpo bench kernels"
    timeout 180 "${run_env[@]}" "$build/grpo" bench kernels --repeat 10 > "$out/bench_kernels.txt" 2>&1 || status=1
    cat "$out/bench_kernels.txt"
  fi
else
  echo "build of grpo failed: $out/build_cli.log"
  grep -m 20 -E "error|FAILED" "$out/build_cli.log"
  status=1
fi
# Optional, with the time left: a training recipe on the GPU (GRPO_GPU_RECIPE=a config, e.g.
# configs/countdown_tiny_gpu.yaml), stopped with SIGINT (a clean stop: the run writes its last
# checkpoint) at GRPO_GPU_DEADLINE seconds after the start (default 570, under the device
# tool's 600 s a command). Its metrics, samples, log and curves land in $out/recipe/; the run
# itself (checkpoints) stays in runs/gpu_recipe. Its status does not change the check's.
# GRPO_GPU_RECIPE_ONLY=1 skips the tests and the bench (a second call on the still-warm machine,
# whose build folder and runs/ remain) and resumes runs/gpu_recipe from its last checkpoint when
# it has one, so a recipe longer than one call continues where the previous call stopped it.
recipe="${GRPO_GPU_RECIPE:-}"
if [[ -n "$recipe" && -x "$build/grpo" ]]; then
  left=$((${GRPO_GPU_DEADLINE:-570} - $(elapsed)))
  if ((left > 30)); then
    stamp "recipe $recipe for at most $left s"
    mkdir -p "$out/recipe"
    resume=()
    if [[ -n "${GRPO_GPU_RECIPE_ONLY:-}" && -d runs/gpu_recipe/checkpoints ]]; then
      resume=(--resume auto)
      stamp "continuing runs/gpu_recipe"
    else
      rm -rf runs/gpu_recipe
    fi
    timeout --signal=INT --kill-after=20 "$left" "${run_env[@]}" "$build/grpo" train \
      --config "$recipe" --run-dir runs/gpu_recipe "${resume[@]}" > "$out/recipe/train.log" 2>&1
    stamp "recipe stopped (exit $?)"
    for f in metrics.jsonl samples.jsonl sft/metrics.jsonl; do
      [[ -f "runs/gpu_recipe/$f" ]] && cp "runs/gpu_recipe/$f" "$out/recipe/${f//\//_}"
    done
    tail -5 "$out/recipe/train.log"
    [[ -f runs/gpu_recipe/metrics.jsonl ]] &&
      "$python" scripts/plot_curves.py runs/gpu_recipe --out "$out/recipe/curves.png" \
        > "$out/recipe/plot.log" 2>&1
  else
    stamp "no time left for the recipe ($left s)"
  fi
fi
stamp "done, status $status"
exit $status

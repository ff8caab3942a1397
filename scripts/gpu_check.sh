#!/usr/bin/env bash
# One prepared GPU check (docs/kernels.md): the `gpu` tests (the CUDA kernels against the ATen
# reference), then `grpo bench kernels`, and with GRPO_GPU_RECIPE set a training recipe that runs
# beside them from the start until GRPO_GPU_DEADLINE. Meant for one device-tool call of at most
# 600 s on a 16-core GPU host. The programs come from .gpu_prebuilt/ (scripts/gpu_prebuild.sh,
# built on the CPU machine against the image's PyTorch version) when its manifest matches this
# machine and they start here; otherwise the script configures and builds them against the
# installed PyTorch. The C++ dependencies (spdlog, yaml-cpp, ...) come from .gpu_deps/*.deb when
# that folder is there (scripts/gpu_deps.sh): unpacked into a private prefix, preferred to
# whatever the image has. Exit status 0 only when every gpu test ran (none skipped) and passed
# and the bench ran; the recipe's outcome does not count.
# Outputs: $OUT (or ./gpu_check_out) gets at most 8 files, what the device tool brings back:
# check.log (all this prints), gtest_gpu.log, bench_kernels.txt, bench_train.txt, the recipe's
# metrics.jsonl and curves.png, and logs.tar.gz with every other log (env, configure, build,
# reruns of failed tests, the recipe's train.log, sft_metrics.jsonl, samples.jsonl). It is
# packed again after each phase, so a call cut short still returns what was done.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
out="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$out"
logs=$(mktemp -d /tmp/gpu_check_logs.XXXXXX) || exit 1
exec > >(tee -a "$out/check.log") 2>&1
build="${GRPO_GPU_BUILD:-build-gpu}"
t0=$SECONDS
stamp() { echo "[gpu_check $((SECONDS - t0)) s] $*"; }
elapsed() { echo $((SECONDS - t0)); }
pack() { tar -czf "$out/logs.tar.gz.tmp" -C "$logs" . && mv "$out/logs.tar.gz.tmp" "$out/logs.tar.gz"; }

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
} > "$logs/env.txt" 2>&1
cat "$logs/env.txt"
# The torch package folder itself (its cmake config finds libtorch.so next to the headers).
torch_dir="$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')" || {
  echo "no torch importable by $python (set PYTHON)"
  exit 1
}
torch_version="$("$python" -c 'import torch; print(torch.__version__)')"
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
  echo "carried deps: ${#debs[@]} packages in $deps" | tee -a "$logs/env.txt"
fi
# Only the architecture of the GPU present ("9.0" -> 90): half the nvcc time of "80;90".
arch="${GRPO_CUDA_ARCHITECTURES:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader \
  2> /dev/null | head -1 | tr -d ' .')}"

# The programs: prebuilt ones when their manifest names this torch, this architecture and these
# sources, and both start with every symbol bound (LD_BIND_NOW) against this machine's libraries
# (torch's and its pip CUDA libraries on LD_LIBRARY_PATH, since their RUNPATH names folders of
# the machine that built them); else a build here.
grpo_bin=
test_bin=
pre=.gpu_prebuilt
if [[ -f "$pre/manifest.txt" ]]; then
  want=$(bash scripts/gpu_manifest.sh "$torch_version" "${arch:-80;90}")
  site=$(dirname "$torch_dir")
  pre_path="$torch_dir/lib"
  for d in "$site"/nvidia/*/lib; do [[ -d "$d" ]] && pre_path="$pre_path:$d"; done
  [[ -n "${lib:-}" ]] && pre_path="$pre_path:$lib"
  # grpo loads its SentencePiece module by the path it was built with, on the machine that built
  # it: the carried copy instead.
  pre_env=(env "LD_LIBRARY_PATH=$pre_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    "GRPO_SENTENCEPIECE_MODULE=$PWD/$pre/libgrpo_sentencepiece.so")
  if [[ "$(cat "$pre/manifest.txt")" != "$want" ]]; then
    echo "$pre does not match this machine and tree; building. Wanted:"
    echo "$want"
    echo "found:"
    cat "$pre/manifest.txt"
  elif [[ ! -f "$pre/libgrpo_sentencepiece.so" ]] ||
    ! "${pre_env[@]}" LD_BIND_NOW=1 "$pre/grpo" version > "$logs/prebuilt.log" 2>&1 ||
    ! grep -q "linked: yes" "$logs/prebuilt.log" ||
    ! "${pre_env[@]}" LD_BIND_NOW=1 "$pre/test_ops_cuda" --gtest_list_tests >> "$logs/prebuilt.log" 2>&1; then
    echo "$pre does not start here; building. Its output:"
    head -20 "$logs/prebuilt.log"
  else
    stamp "using $pre ($(tr '\n' ' ' < "$pre/manifest.txt"))"
    head -7 "$logs/prebuilt.log"
    grpo_bin=$pre/grpo
    test_bin=$pre/test_ops_cuda
    run_env=("${pre_env[@]}")
  fi
fi
if [[ -z "$grpo_bin" ]]; then
  arch_flag=()
  [[ "$arch" =~ ^[0-9]+[a-z]?$ ]] && arch_flag=(-DGRPO_CUDA_ARCHITECTURES="$arch")
  gen=()
  command -v ninja > /dev/null && gen=(-G Ninja)
  stamp "configure (arch ${arch:-80;90}, $jobs jobs)"
  cmake -S . -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DGRPO_CUDA=ON -DGRPO_WERROR=ON \
    -DGRPO_BUILD_TESTS=ON "${arch_flag[@]}" -DCMAKE_PREFIX_PATH="$prefix_path" "${dep_flags[@]}" \
    > "$logs/configure.log" 2>&1 || {
    echo "configure failed:"
    tail -30 "$logs/configure.log"
    pack
    exit 1
  }
  grep -E "grpo: (LibTorch|kernels)" "$logs/configure.log"
  stamp "build grpo and test_ops_cuda"
  cmake --build "$build" -j "$jobs" --target grpo test_ops_cuda > "$logs/build.log" 2>&1 || {
    echo "build failed:"
    grep -m 20 -E "error|FAILED" "$logs/build.log"
    pack
    exit 1
  }
  grpo_bin=$build/grpo
  test_bin=$build/tests/ops/test_ops_cuda
fi
pack

# The recipe (GRPO_GPU_RECIPE=a config, e.g. configs/countdown_tiny_gpu.yaml) starts now and runs
# beside the tests, paused (SIGSTOP) while the bench times, and is stopped with SIGINT (a clean
# stop: the run writes its last checkpoint) at GRPO_GPU_DEADLINE seconds after the start (default
# 570, under the device tool's 600 s a command). The run itself (checkpoints) stays in
# runs/gpu_recipe. GRPO_GPU_RECIPE_ONLY=1 skips the tests and the bench (a second call on the
# still-warm machine, whose build folder and runs/ remain) and resumes runs/gpu_recipe from its
# last checkpoint when it has one, so a recipe longer than one call continues where it stopped.
recipe="${GRPO_GPU_RECIPE:-}"
recipe_pid=
if [[ -n "$recipe" ]]; then
  left=$((${GRPO_GPU_DEADLINE:-570} - $(elapsed)))
  if ((left > 30)); then
    resume=()
    # A stop in the SFT stage leaves its checkpoint in runs/gpu_recipe/sft/checkpoints, so any run
    # folder is resumed (--resume auto starts afresh where it finds no checkpoint).
    if [[ -n "${GRPO_GPU_RECIPE_ONLY:-}" && -d runs/gpu_recipe ]]; then
      resume=(--resume auto)
      stamp "recipe $recipe continues runs/gpu_recipe for at most $left s"
    else
      rm -rf runs/gpu_recipe
      stamp "recipe $recipe for at most $left s"
    fi
    "${run_env[@]}" "$grpo_bin" train --config "$recipe" --run-dir runs/gpu_recipe "${resume[@]}" \
      > "$logs/recipe_train.log" 2>&1 &
    recipe_pid=$!
    (
      sleep "$left"
      kill -INT "$recipe_pid" && kill -CONT "$recipe_pid"
      sleep 20
      kill -KILL "$recipe_pid"
    ) 2> /dev/null &
    watchdog_pid=$!
  else
    stamp "no time left for the recipe ($left s)"
  fi
fi
recipe_alive() { [[ -n "$recipe_pid" ]] && kill -0 "$recipe_pid" 2> /dev/null; }

status=0
if [[ -z "${GRPO_GPU_RECIPE_ONLY:-}" ]]; then
  stamp "gpu tests ($test_bin)"
  timeout 240 "${run_env[@]}" "$test_bin" > "$out/gtest_gpu.log" 2>&1 || status=1
  grep -E "^\[ *(OK|FAILED|SKIPPED|PASSED) *\]|tests? ran|Failure" "$out/gtest_gpu.log" | tail -40
  # A skipped gpu test (no device visible, kernels not linked) is a failed check, not a pass.
  if grep -qE "^\[  SKIPPED \]" "$out/gtest_gpu.log" || ! grep -qE "^\[  PASSED  \]" "$out/gtest_gpu.log"; then
    echo "gpu tests skipped, failed or cut short: see gtest_gpu.log"
    status=1
  fi
  # Kernel launches are asynchronous: a fault shows up at some later call. Rerun only the failed
  # tests with synchronous launches (the error then names the launching wrapper) and, when
  # present, under compute-sanitizer memcheck (names the kernel and the bad address), while the
  # run is young enough.
  failed=$(grep -oE "^\[  FAILED  \] CudaKernels\.[A-Za-z0-9_]+" "$out/gtest_gpu.log" |
    awk '{print $NF}' | sort -u | paste -sd: -)
  if [[ -n "$failed" ]] && (($(elapsed) < 330)); then
    stamp "rerun failed tests with CUDA_LAUNCH_BLOCKING=1: $failed"
    CUDA_LAUNCH_BLOCKING=1 timeout 120 "${run_env[@]}" "$test_bin" --gtest_filter="$failed" \
      > "$logs/failed_blocking.log" 2>&1
    grep -E "Failure|error|Error|FAILED|kernel|\.cpp:[0-9]+" "$logs/failed_blocking.log" | head -40
    sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
    if (($(elapsed) < 330)) && [[ -x "$sanitizer" ]]; then
      stamp "compute-sanitizer memcheck on $failed"
      timeout 120 "${run_env[@]}" "$sanitizer" --tool memcheck --print-limit 20 \
        "$test_bin" --gtest_filter="$failed" > "$logs/failed_memcheck.log" 2>&1
      grep -E "=========" "$logs/failed_memcheck.log" | head -40
    fi
  fi
  pack
  # The bench times alone on the GPU: the recipe is paused (its queued kernels drain first).
  if recipe_alive; then
    kill -STOP "$recipe_pid"
    sleep 2
    stamp "recipe paused for the bench"
  fi
  stamp "grpo bench kernels"
  timeout 180 "${run_env[@]}" "$grpo_bin" bench kernels --repeat 10 > "$out/bench_kernels.txt" 2>&1 || status=1
  cat "$out/bench_kernels.txt"
  # A whole model's update step (forward, loss, backward, AdamW) in bfloat16 with the kernels
  # (`auto`, the default) and with the ATen reference: a qwen2 shape of ~150M parameters, head
  # dim 64, 64 completions of 64 + 448 tokens.
  stamp "grpo bench train: model.kernels auto vs reference"
  for kernels in auto reference; do
    echo "model.kernels: $kernels"
    timeout 120 "${run_env[@]}" "$grpo_bin" bench train --config configs/countdown_tiny_sft.yaml \
      --set trainer.device=cuda --set model.dtype=bfloat16 --set model.kernels=$kernels \
      --set model.architecture.hidden_size=1024 --set model.architecture.intermediate_size=2816 \
      --set model.architecture.num_hidden_layers=8 --set model.architecture.num_attention_heads=16 \
      --set model.architecture.num_key_value_heads=4 --batch 64 --prompt-len 64 \
      --response-len 448 --steps 3 || status=1
  done > "$out/bench_train.txt" 2>&1
  cat "$out/bench_train.txt"
  # NCCL: one rank per GPU through grpo launch (the ProcessGroup's NCCL path: rendezvous,
  # all-reduce, barrier), timed by bench allreduce; on a one-GPU host a world of one.
  gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2> /dev/null | wc -l)
  stamp "grpo launch --nproc-per-node $gpus -- bench allreduce (NCCL)"
  timeout 90 "${run_env[@]}" "$grpo_bin" launch --nproc-per-node "$((gpus > 0 ? gpus : 1))" -- \
    bench allreduce --device cuda --mb 1 64 256 > "$logs/bench_allreduce.txt" 2>&1 || status=1
  cat "$logs/bench_allreduce.txt"
  if recipe_alive; then
    kill -CONT "$recipe_pid"
    stamp "recipe resumed"
  fi
  pack
fi

if [[ -n "$recipe_pid" ]]; then
  wait "$recipe_pid"
  stamp "recipe stopped (exit $?)"
  kill "$watchdog_pid" 2> /dev/null
  tail -5 "$logs/recipe_train.log"
  [[ -f runs/gpu_recipe/metrics.jsonl ]] && cp runs/gpu_recipe/metrics.jsonl "$out/metrics.jsonl"
  [[ -f runs/gpu_recipe/sft/metrics.jsonl ]] && cp runs/gpu_recipe/sft/metrics.jsonl "$logs/sft_metrics.jsonl"
  [[ -f runs/gpu_recipe/samples.jsonl ]] && cp runs/gpu_recipe/samples.jsonl "$logs/samples.jsonl"
  if [[ -f runs/gpu_recipe/metrics.jsonl ]]; then
    "$python" scripts/plot_curves.py runs/gpu_recipe --summary # accuracy, length, s/step windows
    "$python" scripts/plot_curves.py runs/gpu_recipe --out "$out/curves.png" > "$logs/plot.log" 2>&1
  fi
  pack
fi
stamp "done, status $status"
exit $status

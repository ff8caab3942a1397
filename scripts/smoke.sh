#!/usr/bin/env bash
# End-to-end CPU smoke run (the README's first command): install and build (scripts/setup.sh,
# idempotent), then `grpo train --config configs/smoke_cpu.yaml`, which first trains its base
# model from scratch (the SFT stage configs/smoke_sft.yaml: a SentencePiece tokenizer and SFT on
# synthetic worked solutions, into runs/smoke_cpu_sft/, reused by later runs while that config is
# unchanged) and then runs GRPO into runs/smoke_cpu/ (replaced on each run). Ends by drawing the
# curves into runs/smoke_cpu/curves.png (installs Debian's python3-matplotlib when missing).
# Usage: scripts/smoke.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
# Idle OpenMP threads sleep instead of spinning (docs/rollout.md, "Speed on the CPU").
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
scripts/setup.sh "$BUILD_DIR"
RUN=runs/smoke_cpu
SFT=runs/smoke_cpu_sft
rm -rf "$RUN"
"$BUILD_DIR/grpo" train --config configs/smoke_cpu.yaml --run-dir "$RUN" \
  --set model.sft_run_dir="$SFT"
echo "smoke: metrics in $RUN/metrics.jsonl (accuracy, response_length/mean, ...), samples in"
echo "       $RUN/samples.jsonl, checkpoints in $RUN/checkpoints/ (the policy is an HF folder),"
echo "       the SFT stage (base model and tokenizer) in $SFT/"
# The first Python that has matplotlib: the project venv, python3 on PATH, Debian's.
plotting_python() {
  for py in .venv/bin/python python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import matplotlib' 2>/dev/null; then
      echo "$py"
      return 0
    fi
  done
  return 1
}
if ! PY=$(plotting_python) && [ "${GRPO_SKIP_APT:-0}" != "1" ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "smoke: installing python3-matplotlib for the plot"
  install_matplotlib() {
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      python3-matplotlib >/dev/null
  }
  install_matplotlib || { $SUDO apt-get update -qq && install_matplotlib; } || true
  PY=$(plotting_python) || true
fi
if [ -n "${PY:-}" ]; then
  "$PY" scripts/plot_curves.py "$RUN" --out "$RUN/curves.png" --title "smoke_cpu"
  echo "smoke: curves (accuracy, response length, reward, KL, entropy) in $RUN/curves.png"
else
  echo "smoke: no matplotlib, so no plot: install it, then scripts/plot_curves.py $RUN --out curves.png"
fi

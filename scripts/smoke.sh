#!/usr/bin/env bash
# End-to-end CPU smoke run (the README's first command): build, then `grpo train --config
# configs/smoke_cpu.yaml`, which first trains its base model from scratch (the SFT stage
# configs/smoke_sft.yaml: a SentencePiece tokenizer and SFT on synthetic worked solutions, into
# runs/smoke_cpu/sft/, reused by later runs while that config is unchanged) and then runs GRPO.
# Ends with the curves in runs/smoke_cpu/curves.png when Python has matplotlib.
# Usage: scripts/smoke.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
[ -x "$BUILD_DIR/grpo" ] || scripts/setup.sh "$BUILD_DIR"
RUN=runs/smoke_cpu
"$BUILD_DIR/grpo" train --config configs/smoke_cpu.yaml --run-dir "$RUN"
echo "smoke: metrics in $RUN/metrics.jsonl (accuracy, response_length/mean, ...), samples in"
echo "       $RUN/samples.jsonl, checkpoints in $RUN/checkpoints/ (the policy is an HF folder),"
echo "       the SFT stage in $RUN/sft/"
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
if "$PY" -c 'import matplotlib' 2>/dev/null; then
  "$PY" scripts/plot_curves.py "$RUN" --out "$RUN/curves.png" --title "smoke_cpu"
  echo "       curves: $RUN/curves.png"
else
  echo "       curves: pip install matplotlib, then scripts/plot_curves.py $RUN --out curves.png"
fi

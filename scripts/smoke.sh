#!/usr/bin/env bash
# End-to-end CPU smoke run (the README's first command): build, make an arithmetic dataset,
# train a SentencePiece tokenizer on it, then run configs/smoke_cpu.yaml (GRPO on a tiny model
# built from scratch). Outputs land in runs/smoke_cpu/. Usage: scripts/smoke.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
scripts/setup.sh "$BUILD_DIR"  # idempotent: installs what is missing, rebuilds what changed
GRPO="$BUILD_DIR/grpo"
ASSETS=runs/smoke_assets
mkdir -p "$ASSETS"
"$GRPO" data make --task arithmetic --n 512 --seed 0 --difficulty easy --with-solutions \
  --out "$ASSETS/arithmetic.jsonl"
"$GRPO" tokenizer train --input "$ASSETS/arithmetic.jsonl" --field response --vocab-size 512 \
  --model-type bpe --user-symbols '<think>,</think>,<answer>,</answer>' --out "$ASSETS/tokenizer"
rm -rf runs/smoke_cpu
"$GRPO" train --config configs/smoke_cpu.yaml --run-dir runs/smoke_cpu
echo "smoke: metrics in runs/smoke_cpu/metrics.jsonl, samples in runs/smoke_cpu/samples.jsonl,"
echo "       checkpoints in runs/smoke_cpu/checkpoints/ (the policy is an HF folder)"

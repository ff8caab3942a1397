#!/usr/bin/env bash
# DeepSeek-R1's multi-stage pipeline on the tiny countdown task, chaining grpo's verbs
# (docs/recipes.md, "The R1 pipeline"):
#   1. cold start: grpo sft builds a tiny model from scratch on worked solutions
#      (configs/countdown_tiny_sft.yaml);
#   2. reasoning RL: grpo train with the countdown, format and language-consistency rewards
#      (configs/countdown_tiny_r1_rl.yaml), from the cold-start model;
#   3. rejection sampling: grpo eval samples K completions per fresh prompt from the RL model and
#      keeps the correct, finished, well-formatted, language-consistent ones (--keep), then
#      grpo sft fine-tunes the cold-start model on them (configs/countdown_tiny_r1_rs_sft.yaml);
#   4. RL again from that model, with the stage-2 config.
# Every stage's model is evaluated on the same held-out prompts; the script ends with a table
# (pass@1 and mean response length per stage) and writes it to $OUT/summary.json.
#
# Usage: bash scripts/r1_pipeline.sh            (SCALE=gpu: the configs as they are, on cuda)
#        SCALE=cpu bash scripts/r1_pipeline.sh  (the countdown CPU check's sizes, ~12 min of one core)
#        SCALE=test ...                         (seconds: the CTest R1Pipeline.TinyEndToEnd)
# Environment: GRPO (the executable, default build/grpo), OUT (default runs/r1_pipeline),
# SCALE (gpu|cpu|test), and extra overrides per stage as --set words: SFT_SET, RL_SET, RS_SET
# (the rejection-sampling SFT), plus RS_PROMPTS, RS_K, RS_PER_ITEM, EVAL_ITEMS, EVAL_K to
# change the sampling sizes and TASK (countdown generator knobs as key=value words, applied to
# every stage's data; SCALE=test uses two numbers in 1..5). A stage whose output exists is reused, so a stopped run continues.
set -euo pipefail
cd "$(dirname "$0")/.."

GRPO=${GRPO:-build/grpo}
OUT=${OUT:-runs/r1_pipeline}
SCALE=${SCALE:-gpu}

case "$SCALE" in
  gpu)
    scale_sft=() scale_rl=() scale_rs=()
    : "${RS_PROMPTS:=2000}" "${RS_K:=8}" "${RS_PER_ITEM:=2}" "${EVAL_ITEMS:=500}" "${EVAL_K:=4}"
    MAX_NEW=192 DEVICE=cuda # the RL config's rollout.max_new_tokens
    ;;
  cpu | test)
    DEVICE=cpu
    if [ "$SCALE" = cpu ]; then
      # The countdown recipe's CPU check (docs/recipes.md): its SFT stage (0.46M parameters,
      # 1600 steps of 32 on 12000 countdown + 8000 arithmetic examples) and its GRPO stage
      # (200 steps of 16 prompts x G = 8, 192 new tokens, lr 2e-4) for each RL stage; evaluation
      # on its 200 held-out problems x 8 samples. Rejection sampling draws from 2000 prompts, as
      # on the GPU: the search is a fixed procedure, so a prompt's right samples are mostly the
      # same text and only about one per prompt is kept (distinct); sampling takes seconds.
      hidden=128 layers=2 vocab=512 sft_steps=1600 sft_batch=32 sft_n=12000 sft_warmup=20
      rl_steps=200 prompts=16 g=8 rl_lr=2e-4 micro=64
      MAX_NEW=192
      : "${RS_PROMPTS:=2000}" "${RS_K:=8}" "${RS_PER_ITEM:=2}" "${EVAL_ITEMS:=200}" "${EVAL_K:=8}"
    else
      hidden=64 layers=2 vocab=384 sft_steps=300 sft_batch=32 sft_n=8000 sft_warmup=50
      rl_steps=2 prompts=8 g=4 rl_lr=5e-4 micro=32
      MAX_NEW=48
      : "${TASK:=count=2 max_number=5 max_target=10}"
      : "${RS_PROMPTS:=32}" "${RS_K:=4}" "${RS_PER_ITEM:=1}" "${EVAL_ITEMS:=16}" "${EVAL_K:=2}"
    fi
    # 75% guesses in the SFT data, as when this scale's figures (docs/recipes.md) were measured;
    # the SFT config now has 80% for the GPU recipe's larger base.
    scale_sft=(--set trainer.device=cpu --set data.synthetic.0.options.direct_rate=0.75
      --set model.architecture.hidden_size=$hidden
      --set model.architecture.intermediate_size=$((3 * hidden))
      --set model.architecture.num_hidden_layers=$layers
      --set model.architecture.num_attention_heads=4 --set tokenizer.train.vocab_size=$vocab
      --set data.synthetic.0.n=$sft_n --set data.synthetic.1.n=8000 --set sft.batch_size=$sft_batch
      --set trainer.steps=$sft_steps --set trainer.lr=3e-3 --set trainer.warmup_steps=$sft_warmup)
    scale_rl=(--set trainer.device=cpu --set trainer.steps=$rl_steps
      --set trainer.prompts_per_step=$prompts --set rollout.n=$g
      --set rollout.max_new_tokens=$MAX_NEW --set trainer.lr=$rl_lr
      --set trainer.micro_batch_size=$micro --set data.synthetic.0.n=4000
      --set checkpoint.every=0)
    scale_rs=(--set trainer.device=cpu --set sft.batch_size=32 --set trainer.lr=1e-3)
    ;;
  *)
    echo "r1_pipeline: SCALE must be gpu, cpu or test, got '$SCALE'" >&2
    exit 2
    ;;
esac
# The recipe's countdown knobs (configs/countdown_tiny_gpu.yaml's data options), so that the
# prompts made here for rejection sampling and evaluation come from the RL prompts' task.
task_make=(--set search=true --set in_order=true --set max_number=9 --set max_value=30)
task_sft=() task_rl=()
for knob in ${TASK:-}; do
  task_make+=(--set "$knob")
  task_sft+=(--set "data.synthetic.0.options.$knob")
done
task_rl=("${task_sft[@]}")
read -r -a sft_set <<<"${SFT_SET:-}"
read -r -a rl_set <<<"${RL_SET:-}"
read -r -a rs_set <<<"${RS_SET:-}"

mkdir -p "$OUT"
say() { echo "== r1_pipeline: $*" >&2; }

# The policy folder of a run directory's latest checkpoint.
latest_policy() {
  local last
  last=$(ls -d "$1"/checkpoints/step_[0-9]* 2>/dev/null | grep -v '\.tmp$' | sort | tail -n 1)
  [ -n "$last" ] || { echo "r1_pipeline: no checkpoint in $1" >&2; exit 1; }
  echo "$last/policy"
}

# Fresh prompts for rejection sampling (seed 2) from the train split, as the SFT data (seed 0)
# and the RL prompts (seed 1) are (the configs' holdout: 0.1), and evaluation prompts (seed 3)
# from the held-out split: problems that no training stage sees (docs/data.md).
[ -f "$OUT/rs_prompts.jsonl" ] || "$GRPO" data make --task countdown --difficulty easy \
  --n "$RS_PROMPTS" --seed 2 --out "$OUT/rs_prompts.jsonl" --set holdout=0.1 --set split=train \
  "${task_make[@]}" >&2
[ -f "$OUT/held_out.jsonl" ] || "$GRPO" data make --task countdown --difficulty easy \
  --n "$EVAL_ITEMS" --seed 3 --out "$OUT/held_out.jsonl" --set holdout=0.1 --set split=holdout \
  "${task_make[@]}" >&2

say "1/4 cold-start SFT -> $OUT/1_cold_start"
[ -f "$OUT/1_cold_start/.done" ] || {
  "$GRPO" sft --config configs/countdown_tiny_sft.yaml --run-dir "$OUT/1_cold_start" \
    --resume auto "${scale_sft[@]}" "${task_sft[@]}" "${sft_set[@]}"
  touch "$OUT/1_cold_start/.done"
}
cold=$(latest_policy "$OUT/1_cold_start")

say "2/4 reasoning RL (countdown + format + language consistency) -> $OUT/2_rl"
[ -f "$OUT/2_rl/.done" ] || {
  "$GRPO" train --config configs/countdown_tiny_r1_rl.yaml --run-dir "$OUT/2_rl" --resume auto \
    --set model.init=pretrained --set model.path="$cold" "${scale_rl[@]}" "${task_rl[@]}" \
    "${rl_set[@]}"
  touch "$OUT/2_rl/.done"
}
rl1=$(latest_policy "$OUT/2_rl")

say "3/4 rejection sampling: $RS_K samples x $RS_PROMPTS prompts from $rl1"
mkdir -p "$OUT/3_rejection_sampling"
[ -f "$OUT/3_rejection_sampling/summary.json" ] || "$GRPO" eval --model "$rl1" \
  --config configs/countdown_tiny_r1_rl.yaml --data "$OUT/rs_prompts.jsonl" --n "$RS_K" \
  --temperature 1.0 --top-p 1.0 --max-new-tokens "$MAX_NEW" --device "$DEVICE" \
  --keep "$OUT/3_rejection_sampling/kept.jsonl" --keep-per-item "$RS_PER_ITEM" \
  --keep-require format_think_answer --keep-require language_consistency \
  --summary "$OUT/3_rejection_sampling/summary.json"
kept=$(wc -l <"$OUT/3_rejection_sampling/kept.jsonl")
say "kept $kept samples"
if [ "$kept" -eq 0 ]; then
  echo "r1_pipeline: rejection sampling kept nothing; train stage 2 longer (RL_SET)" >&2
  exit 1
fi

say "3/4 SFT of the cold-start model on the kept samples -> $OUT/3_rs_sft"
[ -f "$OUT/3_rs_sft/.done" ] || {
  "$GRPO" sft --config configs/countdown_tiny_r1_rs_sft.yaml --run-dir "$OUT/3_rs_sft" \
    --resume auto --set model.path="$cold" \
    --set data.train_files="[$OUT/3_rejection_sampling/kept.jsonl]" "${scale_rs[@]}" \
    "${rs_set[@]}"
  touch "$OUT/3_rs_sft/.done"
}
rs=$(latest_policy "$OUT/3_rs_sft")

say "4/4 RL again -> $OUT/4_rl"
[ -f "$OUT/4_rl/.done" ] || {
  "$GRPO" train --config configs/countdown_tiny_r1_rl.yaml --run-dir "$OUT/4_rl" --resume auto \
    --set model.init=pretrained --set model.path="$rs" --set trainer.seed=1 \
    "${scale_rl[@]}" "${task_rl[@]}" "${rl_set[@]}"
  touch "$OUT/4_rl/.done"
}
rl2=$(latest_policy "$OUT/4_rl")

say "evaluating every stage on $EVAL_ITEMS held-out prompts x $EVAL_K samples"
mkdir -p "$OUT/eval"
for stage in 1_cold_start:$cold 2_rl:$rl1 3_rs_sft:$rs 4_rl:$rl2; do
  name=${stage%%:*} model=${stage#*:}
  [ -f "$OUT/eval/$name.json" ] || "$GRPO" eval --model "$model" \
    --config configs/countdown_tiny_r1_rl.yaml --data "$OUT/held_out.jsonl" --n "$EVAL_K" \
    --temperature 1.0 --top-p 1.0 --max-new-tokens "$MAX_NEW" --device "$DEVICE" \
    --summary "$OUT/eval/$name.json"
done

python3 - "$OUT" "$kept" <<'EOF'
import json, sys
out, kept = sys.argv[1], int(sys.argv[2])
rows = {}
print(f"{'stage':<14} {'pass@1':>7} {'length':>7}")
for name in ["1_cold_start", "2_rl", "3_rs_sft", "4_rl"]:
    s = json.load(open(f"{out}/eval/{name}.json"))
    rows[name] = {"pass@1": s["pass@1"], "response_length": s["response_length/mean"],
                  "language_consistency": s.get("reward/language_consistency/mean")}
    print(f"{name:<14} {s['pass@1']:7.3f} {s['response_length/mean']:7.1f}")
print(f"rejection sampling kept {kept} samples")
json.dump({"stages": rows, "kept": kept}, open(f"{out}/summary.json", "w"), indent=2)
EOF
say "done: $OUT/summary.json"

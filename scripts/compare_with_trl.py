#!/usr/bin/env python3
"""Side by side with TRL: the same tiny model, data and hyperparameters through `grpo train` and
TRL's GRPOTrainer (CPU), then both reward curves in one plot and both speeds.

Usage (with the project's venv: torch, transformers, trl, sentencepiece, matplotlib):
  .venv/bin/python scripts/compare_with_trl.py --model runs/smoke_cpu/checkpoints/step_000006/policy \
      [--config configs/smoke_cpu.yaml] [--steps 20] [--seeds 0 1] [--threads 2] \
      [--out-dir runs/compare_trl] [--grpo build/grpo] [--set key=value ...]

--model is a Hugging Face folder written by grpo (config.json, model.safetensors, SentencePiece
tokenizer.model): both trainers start from it. The run config (data, reward, rollout, algorithm,
trainer) comes from --config with the model and tokenizer replaced by --model, checkpoints off,
and --set overrides; the fully resolved values (`grpo config show`) are mapped onto GRPOConfig:

  rollout.n -> num_generations            trainer.prompts_per_step * n -> generation batch
  trainer.micro_batch_size -> per_device_train_batch_size (gradient accumulation for the rest)
  trainer.lr/warmup_steps/weight_decay/adam_*/max_grad_norm/gradient_checkpointing -> the same
      TrainingArguments
  algorithm.beta/eps_low/eps_high/mu/entropy_coef -> beta/epsilon/epsilon_high/num_iterations/...
  algorithm.loss_aggregation token_mean|seq_mean_token_mean|seq_mean_token_sum_norm
      -> loss_type dapo|grpo|dr_grpo;  std_scaling -> scale_rewards;  ratio_level -> importance_sampling_level
  rollout.temperature/top_p/top_k/min_p/max_new_tokens -> the same sampling arguments

TRL's rewards: with --trl-reward python (default), Python stand-ins for math_boxed (numeric
answers) and format_think_answer; at the end every completion TRL scored is re-scored by
`grpo reward` and the agreement is reported. With --trl-reward grpo, each batch goes through a
`grpo reward` process (exact, but its start-up, about 1 s on a loaded machine, counts in TRL's
time). Prompts are tokenized without a bos token on both sides (grpo's templates spell out what
the model sees); the script stops if any prompt's ids differ. Writes, under --out-dir:
grpo_s<seed>/ (the grpo run), trl_s<seed>/metrics.jsonl (TRL's log in grpo's metric names),
compare.png (plot_curves.py) and summary.json; prints a table of steps/s and rewards.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die(msg):
    sys.exit(f"compare_with_trl: {msg}")


def process_cpu_seconds():
    """User + system CPU time of this process and its finished children (every thread): less
    sensitive than wall time to other jobs on a shared machine."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def resolved_config(grpo, config, overrides):
    import yaml

    cmd = [grpo, "config", "show", config] + [a for o in overrides for a in ("--set", o)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        die(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    # PyYAML follows YAML 1.1, where `1e-08` (no dot) is a string; grpo writes such floats.
    loader = type("Loader", (yaml.SafeLoader,), {})
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf)$"),
        list("-+0123456789."))
    return yaml.load(out.stdout, Loader=loader)


def render_prompt(tok_cfg, prompt):
    name = tok_cfg.get("template", "r1_zero")
    if name == "plain":
        return prompt
    if name == "custom":
        return tok_cfg["custom_template"].replace("{system}", tok_cfg.get("system", "")).replace(
            "{prompt}", prompt)
    die(f"tokenizer.template '{name}' is not supported here (use plain or custom)")


def synthetic_files(grpo, data, tmp_dir):
    """Writes each `data.synthetic` task with `grpo data make` (the same items grpo generates in
    memory: item i depends only on the task, its options and seed) and returns the files."""
    paths = []
    for i, t in enumerate(data.get("synthetic") or []):
        path = os.path.join(tmp_dir, f"synthetic_{i}.jsonl")
        cmd = [grpo, "data", "make", "--task", t["task"], "--n", str(t["n"]), "--seed",
               str(t["seed"]), "--difficulty", t.get("difficulty", "medium"), "--out", path]
        for key, value in (t.get("options") or {}).items():
            value = ("true" if value else "false") if isinstance(value, bool) else str(value)
            cmd += ["--set", f"{key}={value}"]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            die(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
        paths.append(path)
    return paths


def load_rows(cfg, grpo):
    data = cfg["data"]
    rows = []
    tmp_dir = tempfile.mkdtemp(prefix="compare_trl_data_")
    for path in list(data.get("train_files") or []) + synthetic_files(grpo, data, tmp_dir):
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    rows.append({"prompt": render_prompt(cfg["tokenizer"], r[data["prompt_field"]]),
                                 "answer": str(r.get(data["answer_field"], ""))})
    return rows


def reflection_fraction(texts, words):
    pats = [re.compile(r"(?<![\w-])" + re.escape(w.lower()) + r"(?![\w-])") for w in words]
    hits = sum(any(p.search(t.lower()) for p in pats) for t in texts)
    return hits / max(1, len(texts))


ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.S)
NUMBER_RE = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)$")


def last_boxed(text):
    """Content of the last complete \\boxed{...}, braces balanced (None when there is none)."""
    found, i = None, text.find("\\boxed{")
    while i != -1:
        depth, j = 1, i + len("\\boxed{")
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth == 0:
            found = text[i + len("\\boxed{"):j - 1]
        i = text.find("\\boxed{", i + 1)
    return found


def as_number(text):
    from fractions import Fraction

    t = text.strip().strip("$").strip().rstrip(".").replace(",", "").replace(" ", "")
    m = re.fullmatch(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}", t)
    if m:
        t = f"{m.group(1)}/{m.group(2)}"
    try:
        if "/" in t:
            a, b = t.split("/", 1)
            if NUMBER_RE.match(a) and NUMBER_RE.match(b) and float(b) != 0:
                return Fraction(a) / Fraction(b)
        elif NUMBER_RE.match(t):
            return Fraction(t)
    except (ValueError, ZeroDivisionError):
        pass
    return None


def py_math_boxed(completion, gold, options):
    """A Python stand-in for grpo's math_boxed on numeric answers (docs/rewards.md): the answer
    is found as grpo finds it (location, after_think); numbers compare exactly, anything else
    as whitespace-free text. The end of the run checks it against `grpo reward`."""
    options = options or {}
    text = completion
    if options.get("after_think"):
        if "</think>" not in text:
            return options.get("wrong_score", 0.0)
        text = text[text.rfind("</think>") + len("</think>"):]
    location = options.get("location", "boxed")
    answer = None
    if location in ("boxed", "any"):
        answer = last_boxed(text)
    if answer is None and location in ("answer_tag", "any"):
        blocks = ANSWER_RE.findall(text)
        if blocks:
            answer = last_boxed(blocks[-1])
            answer = blocks[-1] if answer is None else answer
    gold = last_boxed(gold) or gold
    ok = False
    if answer is not None and answer.strip():
        a, g = as_number(answer), as_number(gold)
        ok = (a == g) if (a is not None and g is not None) else \
            re.sub(r"\s+", "", answer).strip("$") == re.sub(r"\s+", "", gold).strip("$")
    return options.get("correct_score", 1.0) if ok else options.get("wrong_score", 0.0)


def py_format_think_answer(completion, options):
    """grpo's format_think_answer (docs/rewards.md), all three modes."""
    options = options or {}
    text = ("<think>" + completion) if options.get("think_in_prompt") else completion
    mode, nonempty = options.get("mode", "strict"), options.get("require_nonempty", True)
    tags = ["<think>", "</think>", "<answer>", "</answer>"]
    if mode == "tag_count":
        return sum(0.25 for t in tags if text.count(t) == 1)
    if mode == "strict":
        m = re.fullmatch(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", text, re.S)
        if not m or any(text.count(t) != 1 for t in tags):
            return 0.0
    else:
        m = re.search(r"<think>(.*?)</think>.*?<answer>(.*?)</answer>", text, re.S)
        if not m:
            return 0.0
    return 0.0 if nonempty and not (m.group(1).strip() and m.group(2).strip()) else 1.0


class PythonRewards:
    """TRL reward functions in Python for math_boxed (numeric answers) and format_think_answer;
    every scored sample is kept so that `grpo reward` can check the verdicts at the end."""

    def __init__(self, cfg):
        self.functions = cfg["reward"]["functions"]
        unknown = [f["name"] for f in self.functions
                   if f["name"] not in ("math_boxed", "format_think_answer")]
        if unknown:
            die(f"no Python stand-in for {unknown}; use --trl-reward grpo")
        self.names = [f["name"] for f in self.functions]
        self.reflection_words = cfg["logging"]["reflection_words"]
        self.seen, self.seconds = [], 0.0
        self.seen_scores = {n: [] for n in self.names}

    def function(self, index):
        f = self.functions[index]

        def reward(prompts, completions, answer, log_metric=None, **_):
            t = time.perf_counter()
            if f["name"] == "math_boxed":
                out = [py_math_boxed(c, a, f.get("options")) for c, a in zip(completions, answer)]
            else:
                out = [py_format_think_answer(c, f.get("options")) for c in completions]
            if index == 0:
                if log_metric is not None:
                    log_metric("reflection/fraction",
                               reflection_fraction(completions, self.reflection_words))
                self.seen.extend(zip(prompts, completions, answer))
            self.seen_scores[f["name"]].extend(out)
            self.seconds += time.perf_counter() - t
            return out

        reward.__name__ = f["name"]
        return reward

    def check_against_grpo(self, grpo, config_path, cfg, workdir):
        """Scores every sample TRL saw with `grpo reward`; returns {name: agreement fraction}."""
        src, dst = os.path.join(workdir, "trl_all.jsonl"), os.path.join(workdir, "trl_all_scored.jsonl")
        pf, af = cfg["data"]["prompt_field"], cfg["data"]["answer_field"]
        with open(src, "w", encoding="utf-8") as f:
            for p, c, a in self.seen:
                f.write(json.dumps({pf: p, "completion": c, af: a}) + "\n")
        out = subprocess.run([grpo, "reward", "--config", config_path, "--input", src,
                              "--output", dst], capture_output=True, text=True)
        if out.returncode != 0:
            die(f"grpo reward failed: {out.stderr.strip()}")
        with open(dst, encoding="utf-8") as f:
            scored = [json.loads(line) for line in f]
        return {n: sum(abs(s["rewards"][n] - mine) < 1e-9 for s, mine in
                       zip(scored, self.seen_scores[n])) / max(1, len(scored))
                for n in self.names}


class GrpoRewards:
    """TRL reward functions backed by `grpo reward`: one process call per batch of completions,
    one TRL function per configured reward (TRL applies the weights)."""

    def __init__(self, grpo, config_path, cfg, workdir):
        self.grpo, self.config_path = grpo, config_path
        self.names = [f["name"] for f in cfg["reward"]["functions"]]
        self.fields = (cfg["data"]["prompt_field"], cfg["data"]["answer_field"])
        reflection_words = cfg["logging"]["reflection_words"]
        self.reflection_words, self.workdir = reflection_words, workdir
        self.key, self.parts, self.seconds = None, None, 0.0

    def _score(self, prompts, completions, answers, log_metric):
        key = (tuple(prompts), tuple(completions))
        if key == self.key:
            return self.parts
        t = time.perf_counter()
        src = os.path.join(self.workdir, "trl_batch.jsonl")
        dst = os.path.join(self.workdir, "trl_batch_scored.jsonl")
        with open(src, "w", encoding="utf-8") as f:
            for p, c, a in zip(prompts, completions, answers):
                f.write(json.dumps({self.fields[0]: p, "completion": c, self.fields[1]: a}) + "\n")
        out = subprocess.run([self.grpo, "reward", "--config", self.config_path, "--input", src,
                              "--output", dst, "--threads", "1"], capture_output=True, text=True)
        if out.returncode != 0:
            die(f"grpo reward failed: {out.stderr.strip()}")
        with open(dst, encoding="utf-8") as f:
            scored = [json.loads(line) for line in f]
        self.parts = {n: [float(s["rewards"][n]) for s in scored] for n in self.names}
        self.key = key
        if log_metric is not None:
            log_metric("reflection/fraction", reflection_fraction(completions, self.reflection_words))
        self.seconds += time.perf_counter() - t
        return self.parts

    def function(self, name):
        def reward(prompts, completions, answer, log_metric=None, **_):
            return self._score(prompts, completions, answer, log_metric)[name]

        reward.__name__ = name
        return reward


def trl_metrics(log_history, reward_names):
    """TRL's log records -> grpo metric names (docs/training.md)."""
    rename = {"reward": "reward/mean", "reward_std": "reward/std", "kl": "kl/mean",
              "entropy": "entropy/mean", "completions/mean_length": "response_length/mean",
              "completions/max_length": "response_length/max",
              "completions/clipped_ratio": "response_length/truncated_fraction",
              "loss": "loss", "grad_norm": "grad_norm", "learning_rate": "lr",
              "reflection/fraction": "reflection/fraction",
              "frac_reward_zero_std": "zero_variance_groups"}
    out = []
    for rec in log_history:
        if "step" not in rec or "reward" not in rec:
            continue
        m = {"step": rec["step"]}
        for k, v in rec.items():
            if k in rename:
                m[rename[k]] = v
            elif k.startswith("rewards/") and k.endswith("/mean"):
                name = k[len("rewards/"):-len("/mean")]
                m[f"reward/{name}/mean"] = v
                if name in ("math_boxed", "countdown", "code_tests") and "accuracy" not in m:
                    m["accuracy"] = v
                if name == "format_think_answer":
                    m["format_rate"] = v
        out.append(m)
    return out


def run_trl(cfg, model_dir, cfg_path, grpo, out_dir, seed, threads, reward_impl):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, LlamaTokenizer
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(threads)
    ro, al, tr = cfg["rollout"], cfg["algorithm"], cfg["trainer"]
    if al["advantage"] not in ("grpo", "drgrpo"):
        die(f"algorithm.advantage {al['advantage']} has no TRL counterpart")
    if al["kl_estimator"] != "k3" and al["beta"] > 0:
        die("TRL's KL penalty is the k3 estimator; set algorithm.kl_estimator: k3")
    if al.get("dual_clip", 0) or al.get("dynamic_sampling") or al.get("overlong_buffer", 0):
        die("dual_clip, dynamic_sampling and overlong_buffer have no TRL GRPOTrainer counterpart")
    G, B = ro["n"], tr["prompts_per_step"]
    batch = B * G
    if tr.get("minibatch_size", 0) not in (0, batch):
        die("trainer.minibatch_size must be 0 (one optimizer step per rollout batch)")
    micro = tr.get("micro_batch_size", 0) or batch
    if batch % micro:
        die(f"micro_batch_size {micro} must divide prompts_per_step * n = {batch}")
    loss_type = {"token_mean": "dapo", "seq_mean_token_mean": "grpo",
                 "seq_mean_token_sum_norm": "dr_grpo"}[al["loss_aggregation"]]
    scale = "none" if al["advantage"] == "drgrpo" else al["std_scaling"]

    # transformers >= 5 maps model_type qwen2 to Qwen2Tokenizer (byte-level BPE) whatever
    # tokenizer_config.json says; grpo's folders ship a SentencePiece model, read by LlamaTokenizer.
    # grpo encodes the rendered prompt without special tokens (the template spells out what the
    # model sees), while TRL calls the tokenizer with its defaults: turn the bos off so both
    # trainers feed the model the same ids, and check that they do.
    try:
        import sentencepiece as spm
    except ImportError:
        die("TRL needs the sentencepiece package to read grpo's tokenizer.model: pip install sentencepiece")
    tok = LlamaTokenizer.from_pretrained(model_dir, add_bos_token=False)
    rows = load_rows(cfg, grpo)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model_dir, "tokenizer.model"))
    mismatched = sum(tok(text=r["prompt"])["input_ids"] != sp.encode(r["prompt"]) for r in rows)
    if mismatched:
        die(f"{mismatched} of {len(rows)} prompts tokenize differently in transformers and grpo")
    if tr["warmup_steps"]:
        print("compare_with_trl: note: transformers' warm-up gives step s the rate lr*s/W (0 at the "
              "first step), grpo lr*(s+1)/W; --set trainer.warmup_steps=0 removes the difference",
              file=sys.stderr)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if reward_impl == "python":
        rewards = PythonRewards(cfg)
        funcs = [rewards.function(i) for i in range(len(rewards.names))]
    else:
        rewards = GrpoRewards(grpo, cfg_path, cfg, out_dir)
        funcs = [rewards.function(n) for n in rewards.names]
    args = GRPOConfig(
        output_dir=out_dir, max_steps=tr["steps"], logging_steps=1, save_strategy="no",
        report_to=[], use_cpu=True, bf16=False, fp16=False, seed=seed, data_seed=seed,
        per_device_train_batch_size=micro, gradient_accumulation_steps=batch // micro,
        num_generations=G, generation_batch_size=batch, num_iterations=al["mu"],
        learning_rate=tr["lr"], warmup_steps=tr["warmup_steps"],
        lr_scheduler_type=("cosine" if tr["lr_schedule"] == "cosine" else
                           "constant_with_warmup" if tr["warmup_steps"] else "constant"),
        weight_decay=tr["weight_decay"], adam_beta1=tr["adam_beta1"], adam_beta2=tr["adam_beta2"],
        adam_epsilon=tr["adam_eps"], max_grad_norm=tr["max_grad_norm"] or 1e9,
        beta=al["beta"], epsilon=al["eps_low"], epsilon_high=al["eps_high"],
        importance_sampling_level=al["ratio_level"], loss_type=loss_type, scale_rewards=scale,
        mask_truncated_completions=al["mask_truncated"], entropy_coef=al.get("entropy_coef", 0.0),
        temperature=ro["temperature"], top_p=ro["top_p"], top_k=ro["top_k"],
        min_p=ro["min_p"] or None, max_completion_length=ro["max_new_tokens"],
        shuffle_dataset=cfg["data"]["shuffle"],
        reward_weights=[f["weight"] for f in cfg["reward"]["functions"]],
        dataloader_num_workers=0, disable_tqdm=True,
        gradient_checkpointing=tr.get("gradient_checkpointing", False),
    )
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tok)
    t, cpu = time.perf_counter(), process_cpu_seconds()
    result = trainer.train()
    wall, cpu = time.perf_counter() - t, process_cpu_seconds() - cpu
    metrics = trl_metrics(trainer.state.log_history, rewards.names)
    with open(os.path.join(out_dir, "metrics.jsonl"), "w", encoding="utf-8") as f:
        for m in metrics:
            f.write(json.dumps(m) + "\n")
    agreement = (rewards.check_against_grpo(grpo, cfg_path, cfg, out_dir)
                 if reward_impl == "python" else None)
    return {"steps": tr["steps"], "train_seconds": wall, "reward_impl": reward_impl,
            "python_reward_agreement_with_grpo": agreement,
            "steps_per_s": tr["steps"] / wall, "cpu_seconds_per_step": cpu / tr["steps"],
            "reward_seconds": rewards.seconds,
            "steps_per_s_without_reward_calls": tr["steps"] / max(1e-9, wall - rewards.seconds),
            "trl_reported_train_runtime": result.metrics.get("train_runtime"),
            "prompt_tokenization_mismatches": mismatched, "prompts": len(rows),
            "metrics": metrics}


def run_grpo(grpo, config, overrides, out_dir, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [grpo, "train", "--config", config, "--run-dir", out_dir] + [
        a for o in overrides for a in ("--set", o)]
    t, cpu = time.perf_counter(), process_cpu_seconds()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t, process_cpu_seconds() - cpu
    if out.returncode != 0:
        die(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    with open(os.path.join(out_dir, "metrics.jsonl"), encoding="utf-8") as f:
        metrics = [json.loads(line) for line in f if line.strip()]
    step_seconds = sum(m.get("time/step", 0.0) for m in metrics)
    return {"steps": len(metrics), "train_seconds": step_seconds,
            "steps_per_s": len(metrics) / step_seconds, "process_seconds": wall,
            "cpu_seconds_per_step": cpu / len(metrics),  # whole process, start-up included
            "metrics": metrics}


def curve_stats(metrics, key="reward/mean"):
    values = [m[key] for m in metrics if isinstance(m.get(key), (int, float))]
    half = values[len(values) // 2:]
    return {"first": values[0] if values else None, "last": values[-1] if values else None,
            "mean": statistics.fmean(values) if values else None,
            "second_half_mean": statistics.fmean(half) if half else None,
            "second_half_sem": (statistics.stdev(half) / len(half) ** 0.5) if len(half) > 1 else None}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="HF folder written by grpo (both runs start from it)")
    p.add_argument("--config", default=os.path.join(ROOT, "configs/smoke_cpu.yaml"))
    p.add_argument("--steps", type=int, default=0, help="override trainer.steps")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for both")
    p.add_argument("--out-dir", default=os.path.join(ROOT, "runs/compare_trl"))
    p.add_argument("--grpo", default=os.path.join(ROOT, "build/grpo"))
    p.add_argument("--set", action="append", default=[], dest="overrides")
    p.add_argument("--trl-reward", choices=["python", "grpo"], default="python",
                   help="TRL's rewards: Python stand-ins (checked against grpo reward at the end) "
                        "or a `grpo reward` process per batch (exact, ~1 s of start-up per call)")
    p.add_argument("--smooth", type=int, default=5, help="moving average of the plotted curves")
    p.add_argument("--skip-trl", action="store_true")
    p.add_argument("--skip-grpo", action="store_true")
    a = p.parse_args()
    if not os.path.isfile(os.path.join(a.model, "config.json")):
        die(f"{a.model} is not a model folder (no config.json)")
    if not os.access(a.grpo, os.X_OK):
        die(f"{a.grpo} is not executable; build grpo or pass --grpo")
    model = os.path.abspath(a.model)
    base = [f"model.init=pretrained", f"model.path={model}", f"tokenizer.path={model}",
            "checkpoint.every=0", "checkpoint.save_final=false", "logging.tensorboard=false",
            "trainer.device=cpu"]
    if a.steps:
        base.append(f"trainer.steps={a.steps}")
    os.makedirs(a.out_dir, exist_ok=True)
    summary = {"model": model, "config": a.config, "threads": a.threads, "runs": {}}
    runs_for_plot, labels = [], []
    for seed in a.seeds:
        overrides = base + [f"trainer.seed={seed}", f"data.seed={seed}"] + a.overrides
        cfg = resolved_config(a.grpo, a.config, overrides)
        with tempfile.TemporaryDirectory() as tmp:
            cfg_path = os.path.join(tmp, "resolved.yaml")
            import yaml

            with open(cfg_path, "w") as f:
                yaml.safe_dump(cfg, f)
            if not a.skip_grpo:
                d = os.path.join(a.out_dir, f"grpo_s{seed}")
                r = run_grpo(a.grpo, a.config, overrides, d, a.threads)
                summary["runs"][f"grpo_s{seed}"] = {k: v for k, v in r.items() if k != "metrics"}
                summary["runs"][f"grpo_s{seed}"]["reward"] = curve_stats(r["metrics"])
                runs_for_plot.append(d)
                labels.append(f"grpo seed {seed}")
            if not a.skip_trl:
                d = os.path.join(a.out_dir, f"trl_s{seed}")
                os.makedirs(d, exist_ok=True)
                r = run_trl(cfg, model, cfg_path, a.grpo, d, seed, a.threads, a.trl_reward)
                summary["runs"][f"trl_s{seed}"] = {k: v for k, v in r.items() if k != "metrics"}
                summary["runs"][f"trl_s{seed}"]["reward"] = curve_stats(r["metrics"])
                runs_for_plot.append(os.path.join(d, "metrics.jsonl"))
                labels.append(f"TRL seed {seed}")
    ours = [v["steps_per_s"] for k, v in summary["runs"].items() if k.startswith("grpo")]
    theirs = [v["steps_per_s"] for k, v in summary["runs"].items() if k.startswith("trl")]
    if ours and theirs:
        summary["speedup"] = statistics.fmean(ours) / statistics.fmean(theirs)
        cpu = {side: statistics.fmean(v["cpu_seconds_per_step"] for k, v in summary["runs"].items()
                                      if k.startswith(side)) for side in ("grpo", "trl")}
        summary["cpu_speedup"] = cpu["trl"] / cpu["grpo"]
    with open(os.path.join(a.out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"{'run':<10}{'steps/s':>9}{'CPU s/step':>11}{'reward first':>13}{'last':>7}"
          f"{'2nd-half mean':>14}")
    for name, r in summary["runs"].items():
        rw = r["reward"]
        fmt = lambda x: f"{x:.3f}" if isinstance(x, float) else str(x)
        print(f"{name:<10}{r['steps_per_s']:>9.3f}{r['cpu_seconds_per_step']:>11.3f}"
              f"{fmt(rw['first']):>13}{fmt(rw['last']):>7}{fmt(rw['second_half_mean']):>14}")
    if "speedup" in summary:
        print(f"grpo / TRL: {summary['speedup']:.1f}x steps/s, "
              f"{summary['cpu_speedup']:.1f}x less CPU time per step")
    if runs_for_plot:
        png = os.path.join(a.out_dir, "compare.png")
        cmd = [sys.executable, os.path.join(ROOT, "scripts/plot_curves.py"), *runs_for_plot,
               "--out", png, "--smooth", str(a.smooth), "--title", "grpo vs TRL GRPOTrainer (same model, data, hyperparameters)"]
        for label in labels:
            cmd += ["--label", label]
        subprocess.run(cmd, check=True)
    print(f"summary: {os.path.join(a.out_dir, 'summary.json')}")


if __name__ == "__main__":
    main()

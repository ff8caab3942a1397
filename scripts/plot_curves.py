#!/usr/bin/env python3
"""Plot the R1-Zero curves of one or more training runs into one PNG.

Usage:
  scripts/plot_curves.py RUN_DIR_or_metrics.jsonl [...] --out curves.png
      [--label NAME ...] [--smooth N] [--title TEXT] [--summary]

Each argument is a run directory (its metrics.jsonl is read) or a metrics.jsonl file. Panels,
against the step: reward (reward/mean), accuracy, mean response length (response_length/mean),
reflection-word frequency (reflection/fraction: the share of completions with a reflection
word), KL (kl/mean) and entropy (entropy/mean). A run with a validation: section also gets its
held-out pass@1 (val/pass@1) in the accuracy panel and its held-out mean length in the length
panel, dashed, and with several validation sources each one's pass@1 (val/<source>/pass@1),
dotted. The length panel also draws the lengths of correct and wrong completions
(response_length/correct_mean, /incorrect_mean), thin dash-dotted and dotted. Runs are overlaid
with a legend; a metric a run did not log is left out of that
panel, and a panel no run logged says so. Metric names are those
of docs/training.md. Needs matplotlib (pip install matplotlib, or the project's .venv).

--summary prints, per run, the means of accuracy, mean response length, reflection-word share,
entropy, seconds per step and held-out pass@1 (val/pass@1, at the steps that validated) over
steps 1-5, 1-10, the 10 steps up to every 50th and the last 10 (the figures docs/recipes.md
quotes), and the step-0 validation when there is one; it needs no matplotlib, and --out is then
optional.
"""
import argparse
import json
import math
import os
import sys

# (panel title, y label, candidate metric keys: the first one a run has is plotted)
PANELS = [
    ("Reward", "mean reward", ["reward/mean"]),
    ("Accuracy", "fraction correct", ["accuracy"]),
    ("Response length", "tokens (mean)", ["response_length/mean"]),
    ("Reflection words", "fraction of completions", ["reflection/fraction", "reflection/per_completion"]),
    ("KL to reference", "per token", ["kl/mean"]),
    ("Entropy", "nats per token", ["entropy/mean"]),
]
# Held-out counterparts drawn dashed in a panel when a run logged them (validation:).
HELD_OUT = {"Accuracy": "val/pass@1", "Response length": "val/response_length/mean"}


def metrics_path(arg):
    if os.path.isdir(arg):
        path = os.path.join(arg, "metrics.jsonl")
        if not os.path.exists(path):
            sys.exit(f"plot_curves: {arg} has no metrics.jsonl")
        return path
    if not os.path.exists(arg):
        sys.exit(f"plot_curves: {arg} does not exist")
    return arg


def default_label(arg):
    """The run directory's name, or the file's name without .jsonl."""
    path = os.path.abspath(arg)
    if not os.path.isdir(path):
        name = os.path.basename(path)
        if name != "metrics.jsonl":
            return name[: -len(".jsonl")] if name.endswith(".jsonl") else name
        path = os.path.dirname(path)
    return os.path.basename(path) or path


def read_metrics(path):
    """{key: [(step, value)]} in step order; a step logged twice keeps its last record (a resumed
    run), null values (NaN/inf in JSON) are skipped."""
    by_step = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                print(f"plot_curves: {path}:{n}: not JSON, skipped", file=sys.stderr)
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), (int, float)):
                by_step[record["step"]] = record
    series = {}
    for step in sorted(by_step):
        for key, value in by_step[step].items():
            if key == "step" or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if math.isfinite(value):
                series.setdefault(key, []).append((step, float(value)))
    return series


SUMMARY = [("accuracy", "accuracy"), ("length", "response_length/mean"),
           ("reflection", "reflection/fraction"), ("entropy", "entropy/mean"),
           ("s/step", "time/step"), ("val pass@1", "val/pass@1")]


def summary_windows(last):
    """(first, last) step windows: 1-5, 1-10, the 10 steps up to each 50th, the last 10."""
    out = [(1, min(5, last)), (1, min(10, last))]
    out += [(k - 9, k) for k in range(50, last, 50)]
    out.append((max(1, last - 9), last))
    return sorted(set(out), key=lambda w: (w[1], w[0]))


def print_summary(label, series):
    steps = sorted({s for values in series.values() for s, _ in values})
    if not steps:
        print(f"{label}: no steps logged")
        return
    print(f"{label}: {len(steps)} steps logged, last {steps[-1]:g}")
    print("  steps    " + "".join(f"{name:>12}" for name, _ in SUMMARY))
    windows = summary_windows(int(steps[-1]))
    if steps[0] == 0:  # the validation before training
        windows = [(0, 0)] + windows
    for lo, hi in windows:
        cells = []
        for _, key in SUMMARY:
            vals = [v for s, v in series.get(key, []) if lo <= s <= hi]
            cells.append(f"{sum(vals) / len(vals):12.3f}" if vals else f"{'-':>12}")
        print(f"  {lo:>3}-{hi:<4}" + "".join(cells))


def smooth(values, window):
    if window <= 1:
        return values
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run directories or metrics.jsonl files")
    p.add_argument("--out", help="PNG file to write (required without --summary)")
    p.add_argument("--label", action="append", default=[], help="legend name per run, in order")
    p.add_argument("--smooth", type=int, default=1, help="trailing moving average over N steps")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--summary", action="store_true", help="print windowed means (see above)")
    args = p.parse_args(argv)
    if args.label and len(args.label) != len(args.runs):
        sys.exit(f"plot_curves: {len(args.label)} --label for {len(args.runs)} runs")
    if not args.out and not args.summary:
        sys.exit("plot_curves: give --out FILE.png, --summary or both")
    if args.summary:
        for i, arg in enumerate(args.runs):
            label = args.label[i] if args.label else default_label(arg)
            print_summary(label, read_metrics(metrics_path(arg)))
        if not args.out:
            return 0

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_curves: matplotlib is not installed; `pip install matplotlib` "
                 "(or run with the project's .venv/bin/python)")

    runs = []
    for i, arg in enumerate(args.runs):
        label = args.label[i] if args.label else default_label(arg)
        runs.append((label, read_metrics(metrics_path(arg))))

    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    for ax, (title, ylabel, keys) in zip(axes.flat, PANELS):
        drawn = []
        for label, series in runs:
            key = next((k for k in keys if k in series), None)
            if key is None:
                continue
            steps = [s for s, _ in series[key]]
            values = smooth([v for _, v in series[key]], args.smooth)
            line = ax.plot(steps, values, label=label, marker="o" if len(steps) < 30 else None,
                           markersize=3)[0]
            drawn.append(key)
            held = HELD_OUT.get(title)
            if held in series:
                ax.plot([s for s, _ in series[held]], [v for _, v in series[held]], "--",
                        color=line.get_color(), marker="s", markersize=3,
                        label=f"{label} held-out ({held})")
            if title == "Response length":  # correct and wrong completions apart
                for key, style, name in (("response_length/correct_mean", "-.", "correct"),
                                         ("response_length/incorrect_mean", ":", "wrong")):
                    if key in series:
                        ax.plot([s for s, _ in series[key]],
                                smooth([v for _, v in series[key]], args.smooth), style,
                                color=line.get_color(), linewidth=1, label=f"{label} {name}")
            if held == "val/pass@1":  # each validation source's own (val/<source>/pass@1)
                sources = sorted(k for k in series if k.startswith("val/") and
                                 k.endswith("/pass@1") and k != held)
                for n, key in enumerate(sources):
                    ax.plot([s for s, _ in series[key]], [v for _, v in series[key]], ":",
                            color=line.get_color(), marker="^v<>dp"[n % 6], markersize=3,
                            label=f"{label} {key[len('val/'):-len('/pass@1')]}")
        ax.set_title(title if not drawn else f"{title} ({drawn[0]})", fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes,
                    color="gray")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"plot_curves: wrote {args.out} ({len(runs)} run{'s' if len(runs) != 1 else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

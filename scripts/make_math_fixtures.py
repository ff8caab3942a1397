#!/usr/bin/env python3
"""Builds tests/fixtures/reward/math_verify_pairs.jsonl: (gold, prediction) pairs with the
verdict of math-verify (PyPI), the peer our math_boxed checker is measured against.

Pairs come from two places: math-verify's documented behaviour (hand-written cases for each
normalisation and structure) and the gold answers of the benchmark files in
../shared/data/benchmarks, each paired with a rewritten-but-equal form and a corrupted form.
Both sides are given to math-verify as \\boxed{...}, the way our reward sees a completion.

Usage: /work/main/.venv/bin/python scripts/make_math_fixtures.py [--bench DIR] [--out FILE]
(needs `pip install math-verify` in the venv; deterministic: no randomness beyond a fixed seed).
"""
import argparse
import json
import os
import random
import re

from math_verify import parse, verify

# Documented behaviour: (gold, prediction). Verdicts are not written here: math-verify decides.
HAND = [
    # fractions and shorthands
    ("\\frac{1}{2}", "0.5"), ("\\frac{1}{2}", "\\dfrac{1}{2}"), ("\\frac{1}{2}", "\\frac12"),
    ("\\frac{1}{2}", "1/2"), ("\\frac{3}{4}", "\\frac{6}{8}"), ("\\frac{1}{3}", "0.33"),
    ("\\frac{1}{3}", "0.333333"), ("\\sqrt{3}", "\\sqrt3"), ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
    ("\\frac{2}{3}", "\\frac{3}{2}"), ("\\frac{5}{2}", "2.5"), ("\\tfrac{7}{8}", "0.875"),
    # markup
    ("(1,2)", "\\left( 1, 2 \\right)"), ("5", "\\text{5}"), ("5", "5."), ("12", "\\mbox{12}"),
    ("\\frac{1}{2}", "\\displaystyle\\frac{1}{2}"), ("3", "\\, 3"),
    # numbers
    ("1000", "1,000"), ("1234567", "1,234,567"), ("25", "025"), ("27", "27.0"), ("-3", "-3.000"),
    ("1500", "1.5 \\times 10^{3}"), ("0.00016", "1.6 \\times 10^{-4}"), ("1000", "100"),
    ("100", "10^2"), ("0.5", ".5"), ("-0.25", "-\\frac{1}{4}"), ("7", "7.5"), ("3", "-3"),
    ("1024", "2^{10}"), ("12", "12.000001"), ("12", "12.01"),
    # units, percent, degrees, currency
    ("5", "5 \\text{ cm}"), ("5", "5\\mathrm{~cm}"), ("18", "\\$18"), ("30", "30^\\circ"),
    ("30^\\circ", "30"), ("50\\%", "50"), ("50\\%", "0.5"), ("50", "50\\%"), ("50\\%", "5"),
    ("20\\%", "20"), ("45^{\\circ}", "45^\\circ"), ("12", "12 \\text{ inches}"),
    ("5", "5\\text{ meters}"), ("9", "\\$9.00"),
    # constants
    ("2\\pi", "2 \\pi"), ("\\pi", "3.14"), ("\\pi", "\\pi"), ("e^2", "e^{2}"), ("\\frac{\\pi}{6}", "\\frac{1}{6}\\pi"),
    ("2\\pi", "6.28"), ("\\infty", "\\infty"), ("-\\infty", "\\infty"),
    # tuples, sets, intervals
    ("(1,2)", "(1, 2)"), ("(1,2)", "(2,1)"), ("\\{1,2\\}", "\\{2,1\\}"), ("(1,2)", "\\{1,2\\}"),
    ("[1,2)", "[1, 2)"), ("[1,2)", "(1,2)"), ("[1,2]", "[1,2)"), ("(-\\infty, 3]", "(-\\infty, 3)"),
    ("(3, \\infty)", "(3,\\infty)"), ("(-\\infty,1)\\cup(2,\\infty)", "(2,\\infty)\\cup(-\\infty,1)"),
    ("(-\\infty,1)\\cup(2,\\infty)", "(-\\infty,1]\\cup(2,\\infty)"), ("[0,1]", "[0, 1]"),
    ("(1,2,3)", "(1,2,3)"), ("(1,2,3)", "(1,3,2)"), ("\\{1,2,3\\}", "\\{3,2,1\\}"),
    # several answers, \pm
    ("1, 2", "2, 1"), ("1,2", "1"), ("1 \\pm \\sqrt{2}", "1+\\sqrt{2}, 1-\\sqrt{2}"),
    ("\\pm 3", "3, -3"), ("1 \\pm \\sqrt{2}", "1+\\sqrt{2}"), ("3, 5, 7", "7, 5, 3"),
    ("-2, 1", "1, -2"), ("2, 3", "2, 4"),
    # equations
    ("3", "x = 3"), ("x=3", "3"), ("y = 2x + 1", "y = 1 + 2x"), ("x=5", "x = 5"),
    ("x=5", "x=6"), ("k = 2", "2"), ("y=-x+3", "y=3-x"),
    # matrices
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}"),
    ("\\begin{pmatrix} \\frac12 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 0.5 \\\\ 2 \\end{pmatrix}"),
    ("\\begin{pmatrix} -1 \\\\ 3 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}"),
    # symbolic
    ("(x+1)^2", "x^2 + 2x + 1"), ("(x+1)^2", "x^2 + 1"), ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}"),
    ("2\\sqrt{2}", "\\sqrt{8}"), ("\\frac{1}{2}", "\\sin(\\pi/6)"), ("\\sqrt[3]{8}", "2"),
    ("\\binom{5}{2}", "10"), ("5!", "120"), ("\\log_2 8", "3"), ("x + 1", "y + 1"),
    ("a^2 - b^2", "(a-b)(a+b)"), ("\\frac{x}{2}", "0.5x"), ("3\\sqrt{13}", "\\sqrt{117}"),
    ("6 - 5i", "6-5i"), ("6 - 5i", "6+5i"), ("2x^2+3x", "x(2x+3)"), ("\\sqrt{2}+\\sqrt{3}", "\\sqrt{3}+\\sqrt{2}"),
    ("\\frac{1}{\\sqrt{3}}", "\\frac{\\sqrt{3}}{3}"), ("\\cos(\\pi/3)", "0.5"), ("\\tan(\\pi/4)", "1"),
    # harder cases: inequalities, equations, percent, degrees, matrices, nested markup
    ("(1,2)", "x \\in (1,2)"), ("x > 3", "(3, \\infty)"), ("x \\ge 2", "[2,\\infty)"),
    ("[-1, 4]", "-1 \\le x \\le 4"), ("(-\\infty, 0)", "x < 0"), ("x<5", "(-\\infty,5]"),
    ("\\frac{\\pi}{2}", "90^\\circ"), ("\\frac{1}{2}", "\\frac{1}{2} \\text{ hours}"),
    ("10\\%", "0.1"), ("10\\%", "10 \\text{percent}"), ("\\$1,000", "1000"),
    ("2\\frac{1}{3}", "\\frac{7}{3}"), ("3 \\frac{1}{2}", "3.5"), ("-\\frac{3}{2}", "-1.5"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"), ("\\frac{-1}{2}", "-\\frac{1}{2}"),
    ("1.5", "\\frac{3}{2}"), ("0.1", "\\frac{1}{10}"), ("\\frac{1}{7}", "0.142857"),
    ("y = x^2", "y=x^{2}"), ("x^2 + y^2 = 25", "y^2 + x^2 = 25"), ("2x + 3y = 6", "y = 2 - \\frac{2}{3}x"),
    ("a=2, b=3", "a=2,b=3"), ("(2, -1)", "x=2, y=-1"), ("\\{-2, 2\\}", "\\pm 2"),
    ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}", "(2, -1)"),
    ("\\sqrt{3}", "3^{1/2}"), ("e", "\\exp(1)"), ("\\ln 2", "\\log 2"), ("\\log_{10} 100", "2"),
    ("4\\sqrt{2}", "\\sqrt{32}"), ("\\frac{3\\sqrt{3}}{4}", "\\frac{3}{4}\\sqrt{3}"),
    ("2^{10}", "1024"), ("\\binom{10}{3}", "120"), ("10!", "3628800"), ("-4", "-(4)"),
    ("\\frac{a}{b}", "a/b"), ("\\frac{x+1}{2}", "\\frac{1}{2}x+\\frac{1}{2}"), ("x^3 - x", "x(x-1)(x+1)"),
    ("\\sin^2 x + \\cos^2 x", "1"), ("2\\sin x \\cos x", "\\sin 2x"), ("\\tan x", "\\frac{\\sin x}{\\cos x}"),
    ("3", "\\boxed{3}"), ("7", "\\textbf{7}"), ("100", "100.00"), ("0", "-0"), ("1", "1.0000001"),
    ("3.14", "\\pi"), ("1000000", "10^6"), ("1000000", "1e6"), ("0.000001", "10^{-6}"),
    # text answers
    ("\\text{(A)}", "A"), ("\\text{Evelyn}", "Evelyn"), ("\\text{Evelyn}", "Bob"), ("\\text{(C)}", "(C)"),
    ("\\text{(B)}", "C"),
]


def boxed(s):
    return "\\boxed{" + s + "}"


def mv_verdict(gold, pred):
    try:
        g = parse(boxed(gold))
        p = parse(boxed(pred))
        return bool(verify(g, p))
    except Exception:  # math-verify's own errors count as "not equal"
        return False


def corrupt(s, rng):
    """A nearby but different answer: bump one digit, or flip a sign."""
    digits = [i for i, c in enumerate(s) if c.isdigit()]
    if digits:
        i = rng.choice(digits)
        return s[:i] + str((int(s[i]) + 1) % 10) + s[i + 1:]
    if "+" in s:
        return s.replace("+", "-", 1)
    return s + "+1"


def rewrite(s):
    """An equal answer written differently: LaTeX variants a grader should see through."""
    t = s.replace("\\dfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    t = re.sub(r"\\frac\{(\d)\}\{(\d)\}", r"\\frac\1\2", t)
    t = t.replace(" ", "")
    if t == s:
        t = "\\left(" + s + "\\right)" if re.fullmatch(r"-?\d+(\.\d+)?", s) else " " + s + " "
    return t


def decimal_form(gold):
    """The gold's value as a 10-significant-digit decimal, when it is one real number."""
    try:
        parsed = parse(boxed(gold))
        expr = parsed[0] if parsed else None
        if expr is not None and getattr(expr, "is_number", False) and expr.is_real:
            return format(float(expr.evalf()), ".10g")
    except Exception:
        pass
    return None


def bench_golds(bench):
    out = []

    def rows(name):
        path = os.path.join(bench, name)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f]

    for r in rows("simplerl_math500_test.jsonl"):
        out.append(("math500", r["answer"]))
    for r in rows("qwen25math_aime24_test.jsonl"):
        out.append(("aime24", str(r["answer"])))
    for r in rows("qwen25math_amc23_test.jsonl"):
        out.append(("amc23", str(r["answer"])))
    for r in rows("qwen25math_gsm8k_test.jsonl"):
        out.append(("gsm8k", r["answer"].split("####")[-1].strip()))
    for r in rows("qwen25math_olympiadbench_test.jsonl"):
        if len(r["final_answer"]) == 1:
            out.append(("olympiadbench", r["final_answer"][0].strip().strip("$")))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", default=os.path.join(os.path.dirname(__file__), "../../shared/data/benchmarks"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "../tests/fixtures/reward/math_verify_pairs.jsonl"))
    ap.add_argument("--per-source", type=int, default=40)
    args = ap.parse_args()
    rng = random.Random(1234)

    pairs = [("documented", g, p) for g, p in HAND]
    by_source = {}
    for source, gold in bench_golds(args.bench):
        by_source.setdefault(source, []).append(gold)
    for source, golds in sorted(by_source.items()):
        picked = rng.sample(golds, min(args.per_source, len(golds)))
        for gold in picked:
            pairs.append((source, gold, rewrite(gold)))
            pairs.append((source, gold, corrupt(gold, rng)))
            dec = decimal_form(gold)
            if dec is not None and dec != gold:
                pairs.append((source, gold, dec))
            if "=" not in gold and "," not in gold and rng.random() < 0.3:
                pairs.append((source, gold, "x = " + gold))
            if source == "gsm8k" and re.fullmatch(r"\d+", gold) and len(gold) >= 4:
                pairs.append((source, gold, f"{int(gold):,}"))
            if source in ("aime24", "amc23"):
                pairs.append((source, gold, str(int(float(gold)))))

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    n_true = 0
    with open(args.out, "w") as f:
        for source, gold, pred in pairs:
            v = mv_verdict(gold, pred)
            n_true += v
            f.write(json.dumps({"source": source, "gold": gold, "pred": pred, "math_verify": v}) + "\n")
    print(f"wrote {len(pairs)} pairs ({n_true} equal, {len(pairs) - n_true} not) to {args.out}")


if __name__ == "__main__":
    main()

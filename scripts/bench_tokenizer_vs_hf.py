#!/usr/bin/env python3
"""Encoding throughput of Hugging Face `tokenizers` (one thread) vs `grpo bench tokenizer`.

Both encode each line of --input as one text, without special tokens; MB/s counts UTF-8 input.
Usage: .venv/bin/python scripts/bench_tokenizer_vs_hf.py --tokenizer DIR --input FILE [--grpo build/grpo]
"""
import argparse
import os
import re
import subprocess
import time

# tokenizers parallelises encode_batch with rayon; pin it to one thread before it is imported.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["RAYON_RS_NUM_CPUS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402


def hf_speed(tokenizer_dir, lines, repeat):
    tok = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    mb = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        tok.encode_batch(lines, add_special_tokens=False)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    for line in lines:
        tok.encode(line, add_special_tokens=False)
    loop = time.perf_counter() - start
    return mb, mb / times[0], mb / min(times[1:]), mb / loop


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokenizer", required=True, help="folder with tokenizer.json")
    parser.add_argument("--input", required=True, help="text file, one text per line")
    parser.add_argument("--grpo", default="build/grpo", help="grpo executable (skipped if absent)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with open(args.input, encoding="utf-8", newline="") as f:
        lines = [line.rstrip("\n") for line in f]
    mb, cold, warm, loop = hf_speed(args.tokenizer, lines, args.repeat)
    print(f"input {args.input}: {len(lines)} lines, {mb:.2f} MB")
    print(f"HF tokenizers, one thread: encode_batch first pass {cold:.2f} MB/s, best of "
          f"{args.repeat} more {warm:.2f} MB/s; encode() per line {loop:.2f} MB/s")
    if not os.path.exists(args.grpo):
        print(f"{args.grpo} not found: build it to compare")
        return
    out = subprocess.run([args.grpo, "bench", "tokenizer", "--tokenizer", args.tokenizer,
                          "--input", args.input, "--repeat", str(args.repeat)],
                         check=True, capture_output=True, text=True).stdout
    print(out.strip())
    m = re.search(r"first pass ([\d.e+]+) MB/s, best of \d+ more ([\d.e+]+) MB/s", out)
    if m:
        ours_cold, ours_warm = float(m.group(1)), float(m.group(2))
        print(f"ratio grpo / HF: first pass {ours_cold / cold:.2f}x, warm {ours_warm / warm:.2f}x")


if __name__ == "__main__":
    main()

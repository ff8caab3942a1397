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
    """MB/s of encode_batch: first pass and best later pass, each as (wall, process CPU)."""
    tok = Tokenizer.from_file(os.path.join(tokenizer_dir, "tokenizer.json"))
    mb = sum(len(line.encode("utf-8")) for line in lines) / 1e6
    walls, cpus = [], []
    for _ in range(repeat + 1):
        wall, cpu = time.perf_counter(), time.process_time()
        tok.encode_batch(lines, add_special_tokens=False)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return mb, (mb / walls[0], mb / cpus[0]), (mb / min(walls[1:]), mb / min(cpus[1:]))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokenizer", required=True, help="folder with tokenizer.json")
    parser.add_argument("--input", required=True, help="text file, one text per line")
    parser.add_argument("--grpo", default="build/grpo", help="grpo executable (skipped if absent)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with open(args.input, encoding="utf-8", newline="") as f:
        lines = [line.rstrip("\n") for line in f]
    mb, cold, warm = hf_speed(args.tokenizer, lines, args.repeat)
    print(f"input {args.input}: {len(lines)} lines, {mb:.2f} MB")
    print(f"HF tokenizers, one thread: encode_batch first pass {cold[0]:.2f} MB/s "
          f"(cpu {cold[1]:.2f}), best of {args.repeat} more {warm[0]:.2f} MB/s (cpu {warm[1]:.2f})")
    if not os.path.exists(args.grpo):
        print(f"{args.grpo} not found: build it to compare")
        return
    out = subprocess.run([args.grpo, "bench", "tokenizer", "--tokenizer", args.tokenizer,
                          "--input", args.input, "--repeat", str(args.repeat)],
                         check=True, capture_output=True, text=True).stdout
    print(out.strip())
    num = r"([\d.e+-]+)"
    m = re.search(rf"first pass {num} MB/s \(cpu {num}\), best of \d+ more {num} MB/s \(cpu {num}\)",
                  out)
    if m:
        ours = [float(g) for g in m.groups()]
        print(f"ratio grpo / HF (wall, cpu): first pass {ours[0] / cold[0]:.2f}x, "
              f"{ours[1] / cold[1]:.2f}x; warm {ours[2] / warm[0]:.2f}x, {ours[3] / warm[1]:.2f}x")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Rollout throughput: `grpo bench rollout` vs Hugging Face `generate` on the same model folder.

Builds a randomly initialised Qwen2-style model with transformers (or uses --model DIR), then
times both engines on the same prompts x G x lengths in fixed-length sampling mode (eos ignored,
temperature 1, no top-k/top-p) and prints tokens/s of each and the ratio. HF gets the same
thread count and a warm-up run; its G samples per prompt use num_return_sequences. Both engines
run with the same OpenMP wait policy (--omp-wait-policy, default passive: on a machine whose
cores are shared with other jobs, spinning OpenMP threads slow both engines by up to 10x at 2
threads, and by different amounts from run to run).

  .venv/bin/python scripts/bench_vs_hf_generate.py --grpo build/grpo --prompts 4 --n 8 \
      --prompt-len 64 --new-tokens 64
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

torch = transformers = None  # imported in main(), after the OpenMP environment is set


def make_model(path, args):
    config = transformers.Qwen2Config(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 4,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=max(1024, args.prompt_len + args.new_tokens),
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = transformers.Qwen2ForCausalLM(config).to(torch.float32)
    model.save_pretrained(path)


def prompt_ids(prompts, length, vocab):
    # The formula of src/cli/bench_rollout.cpp: both engines see the same ids.
    return torch.tensor(
        [[(1 + 7919 * p + 104729 * j) % vocab for j in range(length)] for p in range(prompts)],
        dtype=torch.long,
    )


def bench_hf(path, args, device):
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device).eval()
    ids = prompt_ids(args.prompts, args.prompt_len, model.config.vocab_size).to(device)
    kwargs = dict(
        attention_mask=torch.ones_like(ids),
        do_sample=True,
        temperature=1.0,
        top_k=None,
        top_p=None,
        num_return_sequences=args.n,
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        pad_token_id=0,
        eos_token_id=None,
    )
    best = 0.0
    with torch.inference_mode():
        model.generate(ids, **kwargs)  # warm-up
        for _ in range(args.repeat):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            out = model.generate(ids, **kwargs)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            tokens = (out.shape[1] - ids.shape[1]) * out.shape[0]
            assert tokens == args.prompts * args.n * args.new_tokens, out.shape
            best = max(best, tokens / seconds)
            print(f"hf run: {tokens} tokens in {seconds:.3f} s = {tokens / seconds:.1f} tokens/s")
    return best


def bench_grpo(path, args):
    cmd = [args.grpo, "bench", "rollout", "--model", path, "--prompts", str(args.prompts),
           "--n", str(args.n), "--prompt-len", str(args.prompt_len), "--new-tokens",
           str(args.new_tokens), "--repeat", str(args.repeat), "--threads", str(args.threads),
           "--dtype", args.dtype, "--device", args.device, "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    sys.stdout.write(out)
    line = next(l for l in out.splitlines() if l.startswith("json: "))
    return json.loads(line[len("json: "):])["tokens_per_s"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grpo", default="build/grpo", help="the grpo executable")
    ap.add_argument("--model", help="existing HF folder (default: build a random Qwen2 one)")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--omp-wait-policy", default="passive", choices=["passive", "active", "unset"],
                    help="OMP_WAIT_POLICY for both engines (unset: the environment's)")
    args = ap.parse_args()
    if args.omp_wait_policy != "unset":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()  # before libgomp loads
    global torch, transformers
    import torch
    import transformers
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or os.path.join(tmp, "model")
        if not args.model:
            make_model(path, args)
        print(f"transformers {transformers.__version__}, torch {torch.__version__}, "
              f"{args.threads} threads, {args.device}, "
              f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
        ours = bench_grpo(path, args)
        hf = bench_hf(path, args, torch.device(args.device))
    print(f"grpo {ours:.1f} tokens/s, HF generate {hf:.1f} tokens/s: ratio {ours / hf:.2f}x")


if __name__ == "__main__":
    main()

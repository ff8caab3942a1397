#!/usr/bin/env python3
"""Builds the model-parity fixtures under tests/fixtures/model/ with Hugging Face transformers.

For every supported model_type it creates a tiny random model (>= 2 layers, GQA, tied and untied
embeddings, MoE with shared experts, rope scaling), saves config.json + model.safetensors and
expected.safetensors (input_ids, attention_mask, logits from the eager fp32 forward), plus
dtypes.safetensors for the safetensors reader test.

  .venv/bin/python scripts/make_model_fixtures.py                 # (re)write the fixtures
  .venv/bin/python scripts/make_model_fixtures.py --check DIR...  # round trip: each DIR is a
      folder saved by grpo (named after a fixture, or with --fixture NAME); loads it with
      transformers and compares its logits with that fixture's expected logits.

Needs: pip install torch transformers safetensors (CPU is enough).
"""
import argparse
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "model")
VOCAB = 128
BATCH, SEQ, PAD = 2, 12, 3  # the second row is left-padded by PAD tokens

COMMON = dict(vocab_size=VOCAB, max_position_embeddings=256, rms_norm_eps=1e-6,
              initializer_range=0.1, bos_token_id=1, eos_token_id=2, pad_token_id=0)

# name -> (config class name, kwargs). Each exercises a different combination of features.
FIXTURES = {
    # Llama 3.1 style rope scaling, tied embeddings, GQA 4:2.
    "llama": ("LlamaConfig", dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2,
                                  tie_word_embeddings=True, rope_theta=10000.0,
                                  rope_scaling=dict(rope_type="llama3", factor=8.0,
                                                    low_freq_factor=1.0, high_freq_factor=4.0,
                                                    original_max_position_embeddings=16))),
    # Linear rope scaling, untied, GQA 8:2, attention and MLP biases.
    "llama_linear_bias": ("LlamaConfig", dict(hidden_size=32, intermediate_size=48,
                                              num_hidden_layers=2, num_attention_heads=8,
                                              num_key_value_heads=2, tie_word_embeddings=False,
                                              attention_bias=True, mlp_bias=True,
                                              rope_theta=500.0,
                                              rope_scaling=dict(rope_type="linear", factor=2.0))),
    "mistral": ("MistralConfig", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                      num_attention_heads=4, num_key_value_heads=1,
                                      tie_word_embeddings=False, sliding_window=None,
                                      rope_theta=10000.0)),
    # Qwen2: q/k/v bias, tied, YaRN.
    "qwen2": ("Qwen2Config", dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2,
                                  tie_word_embeddings=True, use_sliding_window=False,
                                  rope_theta=1000000.0,
                                  rope_scaling=dict(rope_type="yarn", factor=4.0,
                                                    original_max_position_embeddings=64))),
    # Qwen3: q/k RMSNorm, head_dim != hidden / heads, untied.
    "qwen3": ("Qwen3Config", dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                  tie_word_embeddings=False, use_sliding_window=False,
                                  rope_theta=1000000.0)),
    # Qwen2-MoE: shared expert with its sigmoid gate, one dense layer (mlp_only_layers).
    "qwen2_moe": ("Qwen2MoeConfig", dict(hidden_size=32, intermediate_size=64,
                                         moe_intermediate_size=24,
                                         shared_expert_intermediate_size=48, num_experts=8,
                                         num_experts_per_tok=2, norm_topk_prob=False,
                                         decoder_sparse_step=1, mlp_only_layers=[1],
                                         num_hidden_layers=3, num_attention_heads=4,
                                         num_key_value_heads=2, tie_word_embeddings=False,
                                         use_sliding_window=False, rope_theta=10000.0)),
    # Qwen3-MoE: renormalised top-k, q/k norm, tied, linear rope scaling.
    "qwen3_moe": ("Qwen3MoeConfig", dict(hidden_size=32, intermediate_size=64,
                                         moe_intermediate_size=24, num_experts=8,
                                         num_experts_per_tok=3, norm_topk_prob=True,
                                         decoder_sparse_step=1, mlp_only_layers=[],
                                         num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, head_dim=8,
                                         tie_word_embeddings=True, use_sliding_window=False,
                                         rope_theta=10000.0,
                                         rope_scaling=dict(rope_type="linear", factor=2.0))),
    "mixtral": ("MixtralConfig", dict(hidden_size=32, intermediate_size=48, num_local_experts=4,
                                      num_experts_per_tok=2, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2,
                                      tie_word_embeddings=False, sliding_window=None,
                                      rope_theta=10000.0)),
}


def inputs(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=g)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    ids[1, :PAD] = 0
    mask[1, :PAD] = 0
    return ids, mask


def load_model(path):
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager")
    return model.eval()


@torch.no_grad()
def logits_of(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask).logits.float()


def make_fixture(name, index):
    cls_name, kwargs = FIXTURES[name]
    config = getattr(transformers, cls_name)(**COMMON, **kwargs)
    torch.manual_seed(1000 + index)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager")
    with torch.no_grad():  # non-trivial norms and biases, so that loading them matters
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.eval()
    out = os.path.join(ROOT, name)
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ("generation_config.json",):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    ids, mask = inputs(index)
    logits = logits_of(load_model(out), ids, mask)
    save_file({"input_ids": ids, "attention_mask": mask, "logits": logits.contiguous()},
              os.path.join(out, "expected.safetensors"),
              metadata={"format": "pt", "num_parameters": str(model.num_parameters())})
    nparams = model.num_parameters()
    print(f"{name}: {nparams} parameters, logits {tuple(logits.shape)}")


def make_dtypes():
    seq = torch.arange(6).reshape(2, 3) - 2
    tensors = {
        "f32": seq.float(), "i64": seq.long(), "i32": seq.int(), "i8": seq.to(torch.int8),
        "u8": (torch.arange(6).reshape(2, 3) + 250).to(torch.uint8),
        "bool": (torch.arange(6).reshape(2, 3) % 2).bool(),
        "f16": torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -0.25]], dtype=torch.float16),
        "bf16": torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.0, -0.25]], dtype=torch.bfloat16),
    }
    save_file(tensors, os.path.join(ROOT, "dtypes.safetensors"), metadata={"format": "pt"})


def check(dirs, fixture):
    worst = 0.0
    for d in dirs:
        name = fixture or os.path.basename(os.path.normpath(d))
        expected = load_file(os.path.join(ROOT, name, "expected.safetensors"))
        logits = logits_of(load_model(d), expected["input_ids"], expected["attention_mask"])
        m = expected["attention_mask"].bool()
        diff = (logits - expected["logits"])[m].abs().max().item()
        worst = max(worst, diff)
        status = "ok" if diff <= 1e-5 else "MISMATCH"
        print(f"{d}: transformers loads it as {name}; max |logits diff| {diff:.3g} {status}")
    return worst <= 1e-5


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", nargs="+", metavar="DIR", help="round-trip check saved folders")
    ap.add_argument("--fixture", help="fixture name for --check (default: folder name)")
    ap.add_argument("--only", nargs="+", help="only (re)build these fixtures")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.check:
        sys.exit(0 if check(args.check, args.fixture) else 1)
    os.makedirs(ROOT, exist_ok=True)
    make_dtypes()
    for index, name in enumerate(FIXTURES):
        if not args.only or name in args.only:
            make_fixture(name, index)
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()

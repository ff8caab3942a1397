#!/usr/bin/env python3
"""Builds the LoRA fixture under tests/fixtures/lora/ with Hugging Face transformers + PEFT.

The base is the qwen2 model fixture (tests/fixtures/model/qwen2, scripts/make_model_fixtures.py).
PEFT attaches LoRA adapters (rank 4, alpha 8, on q_proj, v_proj, o_proj and down_proj) with
random A and B (init_lora_weights=False, so the adapters change the output), saves them as PEFT
does (adapter/adapter_config.json + adapter/adapter_model.safetensors), and expected.safetensors
holds the adapted model's fp32 logits on the qwen2 fixture's inputs. tests/model/lora_test.cpp
loads the base and the adapter and must reproduce those logits.

  .venv/bin/python scripts/make_lora_fixture.py                 # (re)write the fixture
  .venv/bin/python scripts/make_lora_fixture.py --check DIR     # DIR: an adapter folder written
      by grpo for the qwen2 fixture (lora_test keeps one); PEFT loads it on the base and its
      logits must equal grpo's merged model's (DIR/../merged, written by the same test).

Needs: pip install torch transformers safetensors peft (CPU is enough).
"""
import argparse
import json
import os
import sys

import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(HERE, "..", "tests", "fixtures", "model", "qwen2")
OUT = os.path.join(HERE, "..", "tests", "fixtures", "lora")
TARGETS = ["q_proj", "v_proj", "o_proj", "down_proj"]


def base_model():
    model = transformers.AutoModelForCausalLM.from_pretrained(BASE, dtype=torch.float32,
                                                              attn_implementation="eager")
    return model.eval()


def logits(model, expected):
    with torch.no_grad():
        return model(input_ids=expected["input_ids"],
                     attention_mask=expected["attention_mask"]).logits.float()


def write():
    torch.manual_seed(0)
    expected = load_file(os.path.join(BASE, "expected.safetensors"))
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS,
                        init_lora_weights=False, task_type="CAUSAL_LM")
    model = get_peft_model(base_model(), config).eval()
    out = logits(model, expected)
    base_out = logits(base_model(), expected)
    os.makedirs(OUT, exist_ok=True)
    adapter = os.path.join(OUT, "adapter")
    model.save_pretrained(adapter)
    os.remove(os.path.join(adapter, "README.md"))  # PEFT's model card template
    with open(os.path.join(adapter, "adapter_config.json")) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = "tests/fixtures/model/qwen2"  # not this machine's path
    with open(os.path.join(adapter, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    save_file({"input_ids": expected["input_ids"], "attention_mask": expected["attention_mask"],
               "logits": out.contiguous()}, os.path.join(OUT, "expected.safetensors"),
              metadata={"peft": __import__("peft").__version__,
                        "transformers": transformers.__version__})
    print(f"wrote {OUT}: max |adapted - base| logits = {(out - base_out).abs().max():.4f}")


def check(adapter_dir):
    expected = load_file(os.path.join(BASE, "expected.safetensors"))
    model = PeftModel.from_pretrained(base_model(), adapter_dir).eval()
    ours = transformers.AutoModelForCausalLM.from_pretrained(
        os.path.join(adapter_dir, "..", "merged"), dtype=torch.float32,
        attn_implementation="eager").eval()
    mask = expected["attention_mask"].bool().unsqueeze(-1)
    diff = ((logits(model, expected) - logits(ours, expected)).abs() * mask).max().item()
    print(f"PEFT on grpo's adapter vs grpo's merged folder: max |diff| = {diff:.3g}")
    return 0 if diff < 1e-4 else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", metavar="DIR", help="an adapter folder written by grpo")
    args = p.parse_args()
    if args.check:
        return check(args.check)
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes tests/fixtures/algo/algo_fixtures.json: advantages and policy losses computed by peers.

Loss values, gradients and metrics of TRL's token/sequence GRPO losses come from TRL's own
GRPOTrainer._compute_loss, called on a stand-in trainer object (no model: the per-token
log-probs are handed to it directly). What TRL does not have (dual clip, k1/k2, the k3 clamp,
REINFORCE++, verl's entropy aggregation) follows verl's published formulas, written out here
independently of the C++ code. Run with the repo's venv:
    /work/main/.venv/bin/python scripts/make_algo_fixtures.py
"""
import json
import types
from collections import defaultdict
from pathlib import Path

import torch

import trl
from trl.trainer.grpo_trainer import GRPOTrainer
from trl.trainer.utils import nanstd

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "algo" / "algo_fixtures.json"
STD_EPS = 1e-6  # verl's epsilon; TRL adds 1e-4 instead (docs/algorithms.md)


def tolist(t):
    return t.detach().double().tolist()


# ---------------------------------------------------------------- advantages


def trl_group_advantages(rewards, g, scale):
    """TRL GRPOTrainer._generate_and_score_completions, with verl's epsilon."""
    mean = torch.nanmean(rewards.view(-1, g), dim=1).repeat_interleave(g)
    if scale == "group":
        std = nanstd(rewards.view(-1, g), dim=1).repeat_interleave(g)
    elif scale == "batch":
        std = nanstd(rewards).expand_as(rewards)
    adv = rewards - mean
    if scale != "none":
        adv = adv / (std + STD_EPS)
    return adv


def trl_rloo_advantages(rewards, g):
    """TRL RLOOTrainer: baseline = (group sum - own reward) / (G - 1)."""
    grouped = rewards.view(-1, g)
    baselines = (grouped.sum(1, keepdim=True) - grouped) / (g - 1)
    return rewards - baselines.view(-1)


def verl_reinforce_pp(rewards, lengths, t):
    """verl compute_reinforce_plus_plus_outcome_advantage, gamma = 1, then masked_whiten."""
    mask = (torch.arange(t)[None, :] < lengths[:, None]).double()
    scores = torch.zeros(len(rewards), t, dtype=torch.float64)
    scores[torch.arange(len(rewards)), lengths - 1] = rewards  # reward on the last token
    returns = torch.zeros_like(scores)
    running = torch.zeros(len(rewards), dtype=torch.float64)
    for i in reversed(range(t)):  # discounted returns, gamma = 1, reset on padding
        running = scores[:, i] + running
        returns[:, i] = running
        running = running * mask[:, i]
    mean = (returns * mask).sum() / mask.sum()
    var = (((returns - mean) ** 2) * mask).sum() / mask.sum()
    var = var * mask.sum() / (mask.sum() - 1)  # masked_var(unbiased=True)
    whitened = (returns - mean) * torch.rsqrt(var + 1e-8) * mask
    return whitened[:, 0]  # the same value on every token of a sequence


def advantage_cases():
    g = 4
    rewards = torch.tensor(
        [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 2.0, 1.5, 0.0, 0.0, 0.0, 0.0],
        dtype=torch.float64,
    )
    lengths = torch.tensor([3, 5, 2, 6, 1, 4, 4, 2, 6, 6, 3, 5, 2, 2, 1, 4])
    cases = []
    for scale in ["group", "batch", "none"]:
        cases.append(dict(name=f"grpo_{scale}", estimator="grpo", std_scaling=scale, group_size=g,
                          rewards=tolist(rewards), expected=tolist(trl_group_advantages(rewards, g, scale)),
                          source="TRL GRPOTrainer advantages (trl.trainer.utils.nanstd), eps 1e-6"))
    cases.append(dict(name="drgrpo", estimator="drgrpo", std_scaling="group", group_size=g,
                      rewards=tolist(rewards), expected=tolist(trl_group_advantages(rewards, g, "none")),
                      source="TRL scale_rewards='none' (Dr. GRPO)"))
    cases.append(dict(name="rloo", estimator="rloo", std_scaling="group", group_size=g,
                      rewards=tolist(rewards), expected=tolist(trl_rloo_advantages(rewards, g)),
                      source="TRL RLOOTrainer leave-one-out baseline"))
    cases.append(dict(name="reinforce_pp", estimator="reinforce_pp", std_scaling="group", group_size=g,
                      rewards=tolist(rewards), response_lengths=lengths.tolist(),
                      expected=tolist(verl_reinforce_pp(rewards, lengths, int(lengths.max()))),
                      source="verl compute_reinforce_plus_plus_outcome_advantage + masked_whiten"))
    return cases


# ---------------------------------------------------------------- losses


def loss_inputs(seed, n=4, t=6):
    gen = torch.Generator().manual_seed(seed)
    logp = -torch.rand(n, t, generator=gen, dtype=torch.float64) * 2.0 - 0.05
    old = logp + torch.randn(n, t, generator=gen, dtype=torch.float64) * 0.45
    ref = logp + torch.randn(n, t, generator=gen, dtype=torch.float64) * 0.5
    old[1, :2] = logp[1, :2] + 0.5  # ratio 0.61 with A < 0: clipped below
    adv = torch.tensor([1.2, -0.7, 0.4, -1.5], dtype=torch.float64)[:n]
    lengths = torch.tensor([6, 4, 1, 3])[:n]
    mask = (torch.arange(t)[None, :] < lengths[:, None]).double()
    entropy = torch.rand(n, t, generator=gen, dtype=torch.float64) * 3.0
    return dict(logp=logp, old=old, ref=ref, adv=adv, mask=mask, entropy=entropy)


def trl_loss(x, loss_type, level, beta, eps_low, eps_high, max_len, entropy_coef=0.0):
    """Runs TRL's own GRPOTrainer._compute_loss on a stand-in trainer; returns loss, grad, metrics."""
    n, t = x["logp"].shape
    logp = x["logp"].clone().requires_grad_(True)
    metrics = defaultdict(lambda: defaultdict(list))
    accel = types.SimpleNamespace(
        num_processes=1, sync_gradients=True,
        reduce=lambda v, reduction="sum": v, gather=lambda v: v, gather_for_metrics=lambda v: v)
    fake = types.SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, x["entropy"], None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level=level,
        beta=beta, loss_type=loss_type, epsilon_low=eps_low, epsilon_high=eps_high, use_vllm=False,
        model=types.SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        max_completion_length=max_len, _entropy_bonus_enabled=entropy_coef != 0.0,
        use_adaptive_entropy=False, entropy_coef=entropy_coef, aux_loss_enabled=False,
        _metrics=metrics, accelerator=accel,
        args=types.SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1))
    inputs = dict(prompt_ids=torch.zeros(n, 1, dtype=torch.long), prompt_mask=torch.ones(n, 1),
                  completion_ids=torch.zeros(n, t, dtype=torch.long), completion_mask=x["mask"],
                  advantages=x["adv"], old_per_token_logps=x["old"], ref_per_token_logps=x["ref"],
                  num_items_in_batch=x["mask"].sum())
    loss = GRPOTrainer._compute_loss(fake, None, inputs)
    loss.backward()
    m = metrics["train"]
    out = dict(loss=loss.item(), grad=tolist(logp.grad), entropy_mean=m["entropy"][0])
    if beta != 0.0:
        out["kl_mean"] = m["kl"][0]
    if level == "token":  # TRL's sequence-level clip metrics count sequences, ours count tokens
        out["clip_frac_low"] = m["clip_ratio/low_mean"][0]
        out["clip_frac_high"] = m["clip_ratio/high_mean"][0]
    return out


def verl_kl(logp, ref, estimator):
    """verl core_algos.kl_penalty: kl (k1), mse (k2), low_var_kl (k3, clamped)."""
    if estimator == "k1":
        return logp - ref
    if estimator == "k2":
        return 0.5 * (logp - ref) ** 2
    kl = torch.clamp(ref - logp, min=-20, max=20)
    return torch.clamp(torch.exp(kl) - kl - 1, min=-10, max=10)


def verl_agg(loss_mat, mask, mode, max_len):
    """verl agg_loss; seq-mean-token-sum-norm additionally divided by the sequence count (TRL)."""
    if mode == "token_mean":
        return (loss_mat * mask).sum() / mask.sum()
    seq = (loss_mat * mask).sum(-1)
    if mode == "seq_mean_token_mean":
        return (seq / mask.sum(-1).clamp(min=1)).mean()
    return (seq / max_len).mean()


def verl_loss(x, agg, beta, kl_est, eps_low, eps_high, dual_clip, entropy_coef, max_len):
    """verl compute_policy_loss_vanilla (dual clip = clip_ratio_c) + kl_loss + entropy bonus."""
    logp = x["logp"].clone().requires_grad_(True)
    mask, adv = x["mask"], x["adv"][:, None]
    ratio = torch.exp(torch.clamp(logp - x["old"], min=-20.0, max=20.0))
    pg1 = -adv * ratio
    pg2 = -adv * torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    clip1 = torch.maximum(pg1, pg2)
    pg = clip1
    dual_frac = 0.0
    if dual_clip > 0:
        pg3 = -adv * dual_clip
        pg = torch.where(adv < 0, torch.min(pg3, clip1), clip1)
        dual_frac = (((clip1 > pg3) & (adv < 0)).double() * mask).sum() / mask.sum()
    loss = verl_agg(pg, mask, agg, max_len)
    kl = verl_kl(logp, x["ref"], kl_est)
    if beta != 0.0:
        loss = loss + beta * verl_agg(kl, mask, agg, max_len)
    if entropy_coef != 0.0:
        loss = loss - entropy_coef * verl_agg(x["entropy"], mask, agg, max_len)
    loss.backward()
    tok = mask.sum()
    return dict(
        loss=loss.item(), grad=tolist(logp.grad),
        kl_mean=((kl * mask).sum() / tok).item(), entropy_mean=((x["entropy"] * mask).sum() / tok).item(),
        ratio_mean=((ratio * mask).sum() / tok).item(),
        clip_frac_low=((((ratio < 1 - eps_low) & (adv < 0)).double() * mask).sum() / tok).item(),
        clip_frac_high=((((ratio > 1 + eps_high) & (adv > 0)).double() * mask).sum() / tok).item(),
        clip_frac_dual=float(dual_frac))


def loss_case(name, source, x, cfg, max_len, expected):
    return dict(name=name, source=source, config=cfg, max_response_length=max_len,
                logprobs=tolist(x["logp"]), old_logprobs=tolist(x["old"]), ref_logprobs=tolist(x["ref"]),
                advantages=tolist(x["adv"]), mask=tolist(x["mask"]), entropy=tolist(x["entropy"]),
                expected=expected)


def loss_cases():
    cases = []
    x = loss_inputs(1)
    max_len = 8
    trl_modes = {"dapo": "token_mean", "grpo": "seq_mean_token_mean", "dr_grpo": "seq_mean_token_sum_norm"}
    for loss_type, agg in trl_modes.items():
        for level in ["token", "sequence"]:
            for beta in [0.0, 0.04]:
                cfg = dict(loss_aggregation=agg, ratio_level=level, beta=beta, kl_estimator="k3",
                           eps_low=0.2, eps_high=0.28, dual_clip=0.0, entropy_coef=0.0)
                cases.append(loss_case(f"trl_{loss_type}_{level}_beta{beta}",
                                       f"trl {trl.__version__} GRPOTrainer._compute_loss loss_type={loss_type}",
                                       x, cfg, max_len,
                                       trl_loss(x, loss_type, level, beta, 0.2, 0.28, max_len)))
    # TRL's entropy bonus is a token mean whatever the loss type, so it matches ours under dapo.
    cfg = dict(loss_aggregation="token_mean", ratio_level="token", beta=0.0, kl_estimator="k3",
               eps_low=0.2, eps_high=0.2, dual_clip=0.0, entropy_coef=0.01)
    cases.append(loss_case("trl_dapo_entropy", "trl GRPOTrainer._compute_loss entropy_coef=0.01", x, cfg,
                           max_len, trl_loss(x, "dapo", "token", 0.0, 0.2, 0.2, max_len, 0.01)))
    # verl formulas: dual clip, every KL estimator (with extreme reference values for the k3 clamp),
    # entropy aggregated like the policy term.
    y = loss_inputs(2)
    y["ref"][0, :3] = y["logp"][0, :3] + torch.tensor([3.0, -4.0, 25.0], dtype=torch.float64)
    y["old"][3, :2] = y["logp"][3, :2] - torch.tensor([2.0, 1.5], dtype=torch.float64)  # big ratio, A < 0
    for agg in ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"]:
        for kl_est in ["k1", "k2", "k3"]:
            cfg = dict(loss_aggregation=agg, ratio_level="token", beta=0.1, kl_estimator=kl_est,
                       eps_low=0.2, eps_high=0.28, dual_clip=3.0, entropy_coef=0.02)
            cases.append(loss_case(f"verl_{agg}_{kl_est}_dual3", "verl core_algos formulas", y, cfg, max_len,
                                   verl_loss(y, agg, 0.1, kl_est, 0.2, 0.28, 3.0, 0.02, max_len)))
    return cases


def main():
    torch.set_default_dtype(torch.float64)
    data = dict(generator="scripts/make_algo_fixtures.py", torch=torch.__version__, trl=trl.__version__,
                advantages=advantage_cases(), losses=loss_cases())
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUT}: {len(data['advantages'])} advantage cases, {len(data['losses'])} loss cases")


if __name__ == "__main__":
    main()

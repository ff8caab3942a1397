// The update phase of a GRPO step: the clipped objective over the rollout batch, minibatch by
// minibatch, with gradients summed over the data-parallel ranks (docs/training.md, "One step").
#include <torch/torch.h>

#include <algorithm>

#include "grpo/algo/policy_loss.h"
#include "grpo/train/shared_prompts.h"
#include "grpo_run.h"

namespace grpo::train::detail {

void update(Run& run, const TrainBatch& batch, int64_t step, NonFiniteGuard& guard,
            metrics::StepMetrics& m) {
  const auto& algorithm = run.config.algorithm;
  const int64_t mb = run.plan.minibatch_per_rank, micro = run.plan.micro_batch_size;
  auto stats = at::zeros({algo::kStatCount}, at::kDouble);
  double loss_sum = 0, grad_norm_sum = 0;
  int64_t optimizer_steps = 0, skipped = 0, minibatches = 0, shared = 0, forwards = 0;
  run.optimizer->set_learning_rate(learning_rate(run.config.trainer, step));
  for (int iteration = 0; iteration < algorithm.mu; ++iteration) {
    for (int64_t begin = 0; begin < batch.size(); begin += mb) {
      const int64_t end = std::min(batch.size(), begin + mb);
      algo::LossNormalizers norm;
      // Totals over every rank's share of the minibatch, so that the summed gradients are the
      // full minibatch's.
      const auto totals =
          run.dp->sum({batch.response_mask.narrow(0, begin, end - begin).sum().item<double>(),
                       static_cast<double>(end - begin)},
                      "minibatch token count");
      norm.tokens = totals[0];
      norm.sequences = totals[1];
      norm.max_response_length = run.config.rollout.max_new_tokens;
      if (norm.tokens == 0) continue;  // every completion masked (algorithm.mask_truncated)
      run.optimizer->zero_grad();
      double loss = 0;
      // Each distinct prompt once (SharedPrompts), or every row whole.
      ForwardPlan plan = [&] {
        auto amp = autocast(run);
        return plan_forward(run.policy, batch, begin, end, micro, run.config.trainer.share_prompts,
                            run.config.trainer.max_tokens_per_micro_batch);
      }();
      auto& prompts = plan.prompts;
      if (prompts) prompts->detach();
      ++minibatches;
      shared += prompts ? 1 : 0;
      const auto& micro_batches = plan.micro_batches;
      forwards += static_cast<int64_t>(micro_batches.size());
      for (size_t i = 0; i < micro_batches.size(); ++i) {
        auto sub = batch.select(micro_batches[i]);
        auto tokens = [&] {
          auto amp = autocast(run);
          return plan.token_outputs(run.policy, sub, run.logprob_temperature, true);
        }();
        const auto in = policy_loss_inputs(sub, tokens, algorithm.entropy_coef != 0.0);
        auto out = algo::policy_loss(in, norm, algorithm);
        if (!prompts && i + 1 == micro_batches.size()) run.dp->before_last_backward();
        out.loss.backward();
        loss += out.loss.item<double>();
        stats += out.stats.cpu();
      }
      if (prompts) {
        run.dp->before_last_backward();
        prompts->backward();
      }
      run.dp->reduce_gradients();
      loss = run.dp->sum({loss}, "loss")[0];
      const double grad_norm = clip_grad_norm(run.params, run.config.trainer.max_grad_norm);
      if (guard.check(step + 1, loss, grad_norm, run.params)) {
        run.optimizer->step();
        loss_sum += loss;
        grad_norm_sum += grad_norm;
        ++optimizer_steps;
      } else {
        run.optimizer->zero_grad();
        ++skipped;
      }
    }
  }
  run.dp->sum_(stats, "loss statistics");
  const auto summary = algo::summarize(stats);
  const double steps = static_cast<double>(std::max<int64_t>(optimizer_steps, 1));
  m.set("loss", loss_sum / steps);
  m.set("grad_norm", grad_norm_sum / steps);
  m.set("lr", learning_rate(run.config.trainer, step));
  m.set("kl/mean", summary.kl_mean);
  m.set("entropy/mean", summary.entropy_mean);
  m.set("ratio/mean", summary.ratio_mean);
  m.set("clip_frac/low", summary.clip_frac_low);
  m.set("clip_frac/high", summary.clip_frac_high);
  m.set("clip_frac/dual", summary.clip_frac_dual);
  m.set("nonfinite/skipped_steps", static_cast<double>(skipped));
  m.set("micro_batches", static_cast<double>(forwards));
  m.set("shared_prompts",
        static_cast<double>(shared) / static_cast<double>(std::max<int64_t>(minibatches, 1)));
}

}  // namespace grpo::train::detail

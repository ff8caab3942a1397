// The GRPO loop: the rest of the setup (resume, engine, optimizer, sinks) and one named, timed
// phase after another for each step (the run's setup in grpo_setup.cpp, the update phase in
// grpo_update.cpp, the run's state in grpo_run.h).
#include "grpo/train/grpo_trainer.h"

#include <sys/resource.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "grpo/algo/advantages.h"
#include "grpo/algo/batch_plan.h"
#include "grpo/algo/policy_loss.h"
#include "grpo/core/jsonl.h"
#include "grpo/core/log.h"
#include "grpo/data/prompt_dataset.h"
#include "grpo/model/checkpoint.h"
#include "grpo/model/lora.h"
#include "grpo/reward/pipeline.h"
#include "grpo/rollout/engine.h"
#include "grpo/text/template.h"
#include "grpo/text/tokenizer.h"
#include "grpo/train/checkpoint.h"
#include "grpo/train/data_parallel.h"
#include "grpo/train/nonfinite_guard.h"
#include "grpo/train/optimizer.h"
#include "grpo/train/policy_io.h"
#include "grpo/train/rollout_metrics.h"
#include "grpo/train/run_dir_lock.h"
#include "grpo/train/run_sinks.h"
#include "grpo/train/shared_prompts.h"
#include "grpo/train/stop_signal.h"
#include "grpo/train/train_batch.h"
#include "grpo/train/validation.h"
#include "grpo_run.h"

namespace grpo::train {
namespace {

using detail::autocast;
using detail::Run;
using detail::setup;
using detail::update;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

// Distinct per step and run seed, so a resumed run samples exactly what it would have.
uint64_t step_seed(int seed, int64_t step) {
  uint64_t x = static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(step);
  x ^= x >> 31;
  return x * 0xBF58476D1CE4E5B9ULL;
}

// Renders and tokenizes the step's prompts (setup checked their lengths against
// data.max_prompt_tokens).
std::vector<std::vector<int32_t>> encode_prompts(Run& run,
                                                 const std::vector<data::PromptRecord>& records,
                                                 std::vector<std::string>& rendered) {
  std::vector<std::vector<int32_t>> ids;
  for (const auto& r : records) {
    rendered.push_back(run.prompt_template->render(r.prompt));
    ids.push_back(run.tokenizer->encode(rendered.back()));
  }
  return ids;
}

// Held-out validation of the current policy after `steps_done` steps into `m`.
void validate(Run& run, int64_t steps_done, const std::string& run_dir, metrics::StepMetrics& m) {
  auto amp = autocast(run);
  run.validator->run(run.policy, steps_done, run_dir, m);
}

// One step's samples: the groups that train, and everything generated (for metrics).
struct StepSamples {
  std::vector<std::string> rendered;  // per training group
  std::vector<rollout::Rollout>
      rollouts;  // training groups, prompt-major; prompt_index into rendered
  std::vector<reward::ScoredSample> scores;
  std::vector<double> rewards;  // reward minus the overlong penalty: what the advantages see
  std::vector<rollout::Rollout> all_rollouts;  // every round, for metrics
  std::vector<reward::ScoredSample> all_scores;
  double penalty_sum = 0;
  int rounds = 0;
  int64_t groups_generated = 0;
  int64_t groups_flat = 0;  // all G rewards equal
};

// Generates and scores prompts_per_step groups; with dynamic sampling, keeps only groups whose
// rewards differ and generates again (at most max_sampling_rounds times) until enough remain.
StepSamples collect(Run& run, int64_t step, metrics::StepMetrics& m) {
  const auto& c = run.config;
  // P: this rank's share of the step's prompts (all of them in a single process). The ranks go
  // through the same sampling rounds, so their data cursors stay equal.
  const int64_t P = run.plan.prompts_per_rank, G = c.rollout.n;
  StepSamples out;
  double generate_s = 0, reward_s = 0;
  while (run.dp->any(static_cast<int64_t>(out.rendered.size()) < P, "sampling round")) {
    if (out.rounds == (c.algorithm.dynamic_sampling ? c.algorithm.max_sampling_rounds : 1)) {
      log::warn("step ", step + 1, ": dynamic sampling kept ", out.rendered.size(), " of ", P,
                " groups after ", out.rounds, " rounds; training on those");
      break;
    }
    const uint64_t seed =
        step_seed(c.trainer.seed, step) + static_cast<uint64_t>(out.rounds) * 0x632BE59BD9B4E019ULL;
    ++out.rounds;
    std::vector<std::string> rendered;
    auto records = run.dataset->next_batch(static_cast<size_t>(c.trainer.prompts_per_step),
                                           run.dp->rank(), run.dp->world_size());
    auto prompt_ids = encode_prompts(run, records, rendered);
    auto t0 = Clock::now();
    auto sampling = rollout::sampling_params_from(c.rollout, seed);
    sampling.first_prompt_index = run.dp->rank() * P;  // as if one process sampled them all
    sampling.record_entropy = c.algorithm.top_entropy_quantile < 1.0;
    auto rollouts = [&] {
      auto amp = autocast(run);
      return run.engine->generate(prompt_ids, G, sampling);
    }();
    auto t1 = Clock::now();
    std::vector<reward::Sample> samples;
    for (const auto& r : rollouts) {
      const auto& record = records[r.prompt_index];
      samples.push_back({rendered[r.prompt_index], r.text, record.answer, record.tests});
    }
    auto scores = run.rewards->score(samples);
    generate_s += std::chrono::duration<double>(t1 - t0).count();
    reward_s += std::chrono::duration<double>(Clock::now() - t1).count();

    for (int64_t p = 0; p < static_cast<int64_t>(records.size()); ++p) {
      std::vector<double> group;
      for (int64_t g = 0; g < G; ++g) {
        const size_t i = static_cast<size_t>(p * G + g);
        const double penalty = algo::overlong_penalty(
            static_cast<int64_t>(rollouts[i].completion_ids.size()), c.rollout.max_new_tokens,
            c.algorithm.overlong_buffer, c.algorithm.overlong_penalty);
        out.penalty_sum += penalty;
        group.push_back(scores[i].reward - penalty);
      }
      const bool flat = *std::max_element(group.begin(), group.end()) ==
                        *std::min_element(group.begin(), group.end());
      ++out.groups_generated;
      out.groups_flat += flat ? 1 : 0;
      const bool keep =
          !(c.algorithm.dynamic_sampling && flat) && static_cast<int64_t>(out.rendered.size()) < P;
      if (keep) {
        const int64_t index = static_cast<int64_t>(out.rendered.size());
        out.rendered.push_back(rendered[p]);
        for (int64_t g = 0; g < G; ++g) {
          const size_t i = static_cast<size_t>(p * G + g);
          rollout::Rollout r = rollouts[i];
          r.prompt_index = index;
          out.rollouts.push_back(std::move(r));
          out.scores.push_back(scores[i]);
          out.rewards.push_back(group[static_cast<size_t>(g)]);
        }
      }
    }
    out.all_rollouts.insert(out.all_rollouts.end(), rollouts.begin(), rollouts.end());
    out.all_scores.insert(out.all_scores.end(), scores.begin(), scores.end());
  }
  m.set("time/generate", generate_s);
  m.set("time/reward", reward_s);
  return out;
}

// Ranks train on equal shares (the same number of minibatches and collectives): when dynamic
// sampling left them with different numbers of groups, each keeps the smallest number.
void equalize_groups(Run& run, StepSamples& s) {
  const auto kept = static_cast<int64_t>(s.rendered.size());
  const int64_t common = run.dp->min(kept, "kept groups");
  if (common == kept) return;
  const int64_t rows = common * run.config.rollout.n;
  s.rendered.erase(s.rendered.begin() + common, s.rendered.end());
  s.rollouts.erase(s.rollouts.begin() + rows, s.rollouts.end());
  s.scores.erase(s.scores.begin() + rows, s.scores.end());
  s.rewards.erase(s.rewards.begin() + rows, s.rewards.end());
}

// algorithm.top_entropy_quantile: the policy gradient only on the step's highest-entropy
// response tokens by the behaviour entropy, ranked over every rank's batch.
void select_forking_tokens(Run& run, TrainBatch& batch, metrics::StepMetrics& m) {
  GRPO_CHECK(batch.behaviour_entropy.defined(),
             "top_entropy_quantile: the rollouts carry no entropies");
  const auto sum = [&](const std::vector<double>& v) { return run.dp->sum(v, "entropy quantile"); };
  const float threshold = algo::top_quantile_threshold(
      batch.behaviour_entropy, batch.response_mask, run.config.algorithm.top_entropy_quantile, sum);
  batch.policy_mask = (batch.behaviour_entropy >= threshold).to(at::kFloat) * batch.response_mask;
  const auto counts =
      sum({batch.policy_mask.sum().item<double>(), batch.response_mask.sum().item<double>()});
  m.set("entropy/threshold", std::isfinite(threshold) ? threshold : 0.0);
  m.set("entropy/selected_fraction", counts[1] > 0 ? counts[0] / counts[1] : 0.0);
}

// A run's first step where no group's rewards differ (over every rank) learns nothing, and
// usually means a setup mistake rather than a hard task: say what to check, once.
void warn_if_no_signal(Run& run, const StepSamples& s, int64_t step) {
  double reward_sum = 0;
  for (const auto& score : s.all_scores) reward_sum += score.reward;
  const auto sums =
      run.dp->sum({static_cast<double>(s.groups_flat), static_cast<double>(s.groups_generated),
                   reward_sum, static_cast<double>(s.all_scores.size())},
                  "learning-signal check");
  if (!run.dp->is_main() || sums[1] == 0 || sums[0] < sums[1]) return;
  log::warn("step ", step + 1, ": in all ", sums[1],
            " groups every completion scored the same (mean reward ",
            sums[3] > 0 ? sums[2] / sums[3] : 0.0,
            "), so no group carries a learning signal. If they all score 0, check "
            "data.answer_field (the gold answers), tokenizer.template and "
            "rollout.max_new_tokens (completions cut before their answer); if they all score "
            "the maximum, the prompts are too easy for this model");
}

// Log-probs of a frozen `model` over the batch (train::frozen_logprobs) under trainer.autocast.
at::Tensor frozen_logprobs(Run& run, model::CausalLM& model, const TrainBatch& batch) {
  auto amp = autocast(run);
  return train::frozen_logprobs(model, batch, run.plan.micro_batch_size,
                                run.config.trainer.share_prompts, run.logprob_temperature,
                                run.config.trainer.max_tokens_per_micro_batch);
}

// The reference becomes a copy of the current policy (algorithm.ref_reset_every).
void reset_reference(Run& run) {
  torch::NoGradGuard no_grad;
  auto src = run.policy->named_parameters(true);
  for (auto& item : run.reference->named_parameters(true)) {
    item.value().copy_(src[item.key()]);
  }
}

std::vector<metrics::SampleRecord> sample_records(const Run& run, int64_t step,
                                                  const std::vector<rollout::Rollout>& rollouts,
                                                  const std::vector<std::string>& rendered,
                                                  const std::vector<reward::ScoredSample>& scores,
                                                  const at::Tensor& advantages) {
  std::vector<metrics::SampleRecord> out;
  const size_t n = std::min<size_t>(rollouts.size(), run.config.logging.samples_per_step);
  for (size_t i = 0; i < n; ++i) {
    metrics::SampleRecord s;
    s.step = step;
    s.prompt_index = rollouts[i].prompt_index;
    s.sample_index = rollouts[i].sample_index;
    s.prompt = rendered[rollouts[i].prompt_index];
    s.completion = rollouts[i].text;
    s.reward = scores[i].reward;
    for (size_t f = 0; f < run.rewards->entries().size(); ++f)
      s.reward_parts.emplace_back(run.rewards->entries()[f].name, scores[i].components[f]);
    s.advantage = advantages[static_cast<int64_t>(i)].item<double>();
    s.completion_tokens = static_cast<int64_t>(rollouts[i].completion_ids.size());
    s.finish_reason = rollout::finish_reason_name(rollouts[i].finish_reason);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

TrainSummary run_grpo(const config::Config& config, const TrainOptions& options,
                      const StopSignal* stop) {
  Run run(config);
  setup(run, options);
  std::optional<RunDirLock> lock;  // rank 0 writes the run directory: one such run at a time
  if (run.dp->is_main()) lock.emplace(options.run_dir);
  const std::string hash = config::config_hash(config);
  const std::string config_yaml = config::to_yaml(config);  // config.resolved.yaml and checkpoints
  TrainSummary summary;
  NonFiniteGuard guard(config.trainer.max_nonfinite_steps);
  auto resume = resolve_resume(options.resume, options.run_dir, config, options.force_resume);
  if (run.dp->is_main()) {  // only once the resume is accepted: a refused one changes nothing
    jsonl::AtomicWriter out((fs::path(options.run_dir) / "config.resolved.yaml").string());
    out.write(config_yaml);
    out.commit();
  }
  if (resume) {
    const auto kernels = model::kernel_policy(config.model.kernels);
    run.policy = load_checkpoint_policy(run.policy, config.model, resume->dir);
    const fs::path reference_dir = fs::path(resume->dir) / kReferenceDir;
    if (run.reference && fs::exists(reference_dir)) {
      run.reference = model::load_hf(reference_dir.string(),
                                     model::to_scalar_type(config.model.dtype), kernels);
      for (auto& p : run.reference->parameters()) p.set_requires_grad(false);
      run.reference->eval();
      run.reference_reset = true;
    }
    summary.first_step = resume->state.step;
  }
  run.dp->check_resume_step(summary.first_step);
  // The update's forwards record autograd; rollout and log-prob forwards do not, and never
  // recompute.
  run.policy->set_gradient_checkpointing(config.trainer.gradient_checkpointing);
  run.policy->to(run.device);
  if (run.reference) run.reference->to(run.device);
  run.params = trainable_parameters(*run.policy);
  run.dp->start(run.params);  // identical parameters on every rank, gradient buckets
  run.optimizer = run.dp->make_optimizer(run.params, config.trainer);
  if (resume) {
    run.optimizer->load((fs::path(resume->dir) / kOptimizerFile).string());
    if (run.dp->is_main()) restore_torch_rng(resume->state.rng_states);  // rank 0's stream
    run.dataset->restore(data::DataCursor::from_json(resume->state.data_cursor));
    guard.restore(resume->state.extra.value("nonfinite_consecutive", 0),
                  resume->state.extra.value("nonfinite_total", int64_t{0}));
  }
  run.engine = std::make_unique<rollout::RolloutEngine>(
      run.policy, run.tokenizer.get(), rollout::engine_options_from(config.rollout));
  run.logprob_temperature =
      rollout::logprob_temperature(rollout::sampling_params_from(config.rollout, 0));

  const auto counts = model::count_parameters(run.policy->arch());
  int64_t trainable = 0;
  for (const auto& p : run.params) trainable += p.second.numel();
  const std::string lora = config.model.lora.rank > 0
                               ? " (LoRA rank " + std::to_string(config.model.lora.rank) + ": " +
                                     std::to_string(trainable) + " trainable)"
                               : "";
  log::info("training ", counts.total, " parameters", lora, " on ", run.device.str(), ": ",
            config.trainer.steps, " steps x ", config.trainer.prompts_per_step,
            " prompts x G=", config.rollout.n, " (", run.plan.minibatches_per_step,
            " optimizer step(s) per step)");

  std::optional<RunSinks> sinks;  // rank 0 writes the metrics and samples
  if (run.dp->is_main()) {
    sinks.emplace(options.run_dir, config.logging, config.trainer.steps,
                  resume ? std::optional<int64_t>(summary.first_step) : std::nullopt);
  }
  CheckpointManager checkpoints(options.run_dir, config.checkpoint.keep_last);
  auto save = [&](int64_t steps_done) {
    run.optimizer->gather_for_save();  // every rank: a sharded state comes together on rank 0
    if (!run.dp->is_main()) return;    // rank 0 writes checkpoints; every rank resumes from them
    TrainerState state;
    state.step = steps_done;
    state.config_hash = hash;
    state.config_yaml = config_yaml;
    state.data_cursor = run.dataset->cursor().to_json();
    state.rng_states = capture_torch_rng();
    state.extra = {{"nonfinite_consecutive", guard.consecutive()},
                   {"nonfinite_total", guard.total_skipped()}};
    CheckpointWriters writers;
    set_policy_writers(writers, run.policy, config.model, run.tokenizer_dir);
    writers.optimizer = [&](const std::string& path) { run.optimizer->save(path); };
    if (run.reference_reset) {
      writers.reference = [&](const std::string& dir) {
        model::save_hf(run.reference, dir, run.tokenizer_dir);
      };
    }
    summary.last_checkpoint = checkpoints.save(state, writers);
  };

  int64_t step = summary.first_step;
  if (run.validator && step == 0 && config.validation.before_train) {
    metrics::StepMetrics m(0);
    validate(run, 0, options.run_dir, m);
    if (sinks) sinks->write_record(m);
  }
  for (; step < config.trainer.steps; ++step) {
    const auto step_start = Clock::now();
    metrics::StepMetrics m(step + 1);
    if (run.reference && config.algorithm.ref_reset_every > 0 && step > 0 &&
        step % config.algorithm.ref_reset_every == 0) {
      reset_reference(run);
      run.reference_reset = true;
      log::info("step ", step + 1, ": reference model reset to the current policy");
    }
    StepSamples s = collect(run, step, m);
    equalize_groups(run, s);
    if (s.rollouts.empty()) {
      // Every generated group was flat under dynamic sampling: nothing to learn from.
      log::warn("step ", step + 1, ": no group with differing rewards; no update this step");
    }
    algo::AdvantageResult advantages;
    if (!s.rollouts.empty()) {
      metrics::PhaseTimer timer(m, "advantage");
      std::vector<int64_t> lengths;
      for (const auto& r : s.rollouts) {
        lengths.push_back(static_cast<int64_t>(r.completion_ids.size()));
      }
      // Every rank's rewards, so that batch-level statistics cover the whole step; this rank
      // keeps its own rows.
      const int64_t n = static_cast<int64_t>(s.rewards.size());
      std::vector<double> local = s.rewards;
      local.insert(local.end(), lengths.begin(), lengths.end());
      const auto all = at::tensor(run.dp->gather(local, "rewards"), at::kDouble).view({-1, 2, n});
      algo::AdvantageInputs in;
      in.rewards = all.select(1, 0).reshape(-1);
      in.group_size = config.rollout.n;
      in.response_lengths = all.select(1, 1).reshape(-1).to(at::kLong);
      advantages = algo::compute_advantages(in, config.algorithm);
      advantages.advantages = advantages.advantages.narrow(0, run.dp->rank() * n, n);
    }
    if (!s.rollouts.empty()) {
      auto batch = make_train_batch(s.rollouts, advantages.advantages);
      if (config.algorithm.mask_truncated) {
        for (size_t i = 0; i < s.rollouts.size(); ++i) {
          if (s.rollouts[i].finish_reason == rollout::FinishReason::length) {
            batch.response_mask[static_cast<int64_t>(i)].zero_();
          }
        }
      }
      if (config.algorithm.top_entropy_quantile < 1.0) select_forking_tokens(run, batch, m);
      batch = batch.to(run.device);
      if (config.algorithm.old_logprobs == config::OldLogprobs::recompute) {
        metrics::PhaseTimer timer(m, "old_logprobs");
        auto recomputed = frozen_logprobs(run, run.policy, batch);
        auto diff = ((recomputed - batch.old_logprobs).abs() * batch.response_mask).max();
        m.set("logprob/recorded_vs_recomputed_max_abs_diff", diff.item<double>());
        batch.old_logprobs = recomputed;
      }
      if (run.reference) {
        metrics::PhaseTimer timer(m, "ref");
        batch.ref_logprobs = frozen_logprobs(run, run.reference, batch);
      } else if (config.algorithm.beta > 0) {  // LoRA: the reference is the base model
        metrics::PhaseTimer timer(m, "ref");
        model::LoraDisabled base(run.policy);
        batch.ref_logprobs = frozen_logprobs(run, run.policy, batch);
      }
      metrics::PhaseTimer timer(m, "update");
      update(run, batch, step, guard, m);
    }
    add_rollout_metrics(m, s.all_rollouts, s.all_scores, *run.rewards,
                        config.logging.reflection_words);
    const double groups = static_cast<double>(std::max<int64_t>(s.groups_generated, 1));
    m.set("zero_variance_groups", static_cast<double>(s.groups_flat) / groups);
    if (step == summary.first_step) warn_if_no_signal(run, s, step);
    if (config.algorithm.overlong_buffer > 0) {
      m.set("reward/overlong_penalty/mean",
            s.penalty_sum / static_cast<double>(std::max<size_t>(s.all_rollouts.size(), 1)));
    }
    if (config.algorithm.dynamic_sampling) {
      m.set("dynamic_sampling/rounds", s.rounds);
      m.set("dynamic_sampling/kept_groups", static_cast<double>(s.rendered.size()));
    }
    double generated = 0;
    for (const auto& r : s.all_rollouts) generated += static_cast<double>(r.completion_ids.size());
    const double step_seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    m.set("throughput/tokens_per_s", generated / std::max(step_seconds, 1e-9));
    m.set("memory/peak_rss_mb", peak_rss_mb());
    m.set("time/step", step_seconds);
    run.dp->reduce_metrics(m);
    const bool last = step + 1 == config.trainer.steps;
    if (run.validator && run.validator->due(step + 1, last)) {
      validate(run, step + 1, options.run_dir, m);
    }
    if (sinks) sinks->write(m);
    if (sinks && !s.rollouts.empty()) {
      sinks->write_samples(
          sample_records(run, step + 1, s.rollouts, s.rendered, s.scores, advantages.advantages));
    }

    run.dp->periodic_check(step + 1, run.params);
    const bool stopping = run.dp->any(stop != nullptr && stop->requested(), "stop signal");
    const bool periodic = config.checkpoint.every > 0 && (step + 1) % config.checkpoint.every == 0;
    if (periodic || stopping || (last && config.checkpoint.save_final)) {
      const auto t0 = Clock::now();
      save(step + 1);
      log::debug("checkpoint step ", step + 1, " in ",
                 std::chrono::duration<double>(Clock::now() - t0).count(), " s");
    }
    if (stopping) {
      summary.stopped_by_signal = true;
      ++step;
      break;
    }
  }
  if (sinks) sinks->finish();
  run.dp->release();
  summary.last_step = step;
  return summary;
}

}  // namespace grpo::train

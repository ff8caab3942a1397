// The SFT loop (load, tokenize, masked cross-entropy, AdamW, metrics, checkpoints) and the
// `model.init: sft` stage that trains or reuses a base model; see sft.h.
#include "grpo/train/sft.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <memory>
#include <optional>

#include "grpo/core/error.h"
#include "grpo/core/jsonl.h"
#include "grpo/core/log.h"
#include "grpo/model/checkpoint.h"
#include "grpo/text/sentencepiece_train.h"
#include "grpo/train/checkpoint.h"
#include "grpo/train/data_parallel.h"
#include "grpo/train/device.h"
#include "grpo/train/nonfinite_guard.h"
#include "grpo/train/optimizer.h"
#include "grpo/train/policy_io.h"
#include "grpo/train/run_dir_lock.h"
#include "grpo/train/run_sinks.h"
#include "grpo/train/stop_signal.h"
#include "grpo/train/train_batch.h"
#include "grpo/train/validation.h"

namespace grpo::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// trainer_state.json extra: true in the checkpoint written after the last step.
constexpr const char* kCompleteKey = "sft_complete";

std::vector<data::PromptRecord> load_records(const config::Config& c) {
  GRPO_CHECK_KIND(config, !c.data.train_files.empty() || !c.data.synthetic.empty(),
                  "data.train_files and data.synthetic are both empty: grpo sft needs examples");
  GRPO_CHECK_KIND(config, c.data.synthetic.empty() || c.sft.format != config::SftFormat::text,
                  "data.synthetic items are prompt + response: set sft.format: prompt_response");
  data::FieldMap fields;
  fields.answer = "";
  fields.tests = "";
  if (c.sft.format == config::SftFormat::text) {
    fields.prompt = c.sft.text_field;
  } else {
    fields.prompt = c.data.prompt_field;
    fields.response = c.sft.response_field;
  }
  std::vector<data::PromptRecord> all;
  for (const auto& file : c.data.train_files) {
    auto records = data::load_prompt_file(file, fields);
    log::info("loaded ", records.size(), " examples from ", file);
    all.insert(all.end(), std::make_move_iterator(records.begin()),
               std::make_move_iterator(records.end()));
  }
  for (size_t i = 0; i < c.data.synthetic.size(); ++i) {
    auto records = data::synthetic_records(c.data.synthetic[i], i);
    log::info("generated ", records.size(), " ", c.data.synthetic[i].task, " examples (seed ",
              c.data.synthetic[i].seed, ")");
    all.insert(all.end(), std::make_move_iterator(records.begin()),
               std::make_move_iterator(records.end()));
  }
  return all;
}

// tokenizer.train: a SentencePiece tokenizer trained on the run's texts (templated prompts and
// responses) into <run-dir>/tokenizer, or the one an earlier (interrupted) run left there.
std::string train_tokenizer(const config::Config& c, const std::vector<data::PromptRecord>& records,
                            const text::PromptTemplate& prompt_template,
                            const std::string& run_dir) {
  const fs::path dir = fs::path(run_dir) / "tokenizer";
  if (fs::exists(dir / "tokenizer.model")) {
    log::info("using the tokenizer trained earlier in ", dir.string());
    return dir.string();
  }
  const fs::path corpus = fs::path(run_dir) / "tokenizer_corpus.jsonl";
  {
    jsonl::Writer out(corpus.string());
    for (const auto& r : records) {
      const bool text = c.sft.format == config::SftFormat::text;
      out.write({{"text", text ? r.prompt : prompt_template.render(r.prompt)}});
      if (!r.response.empty()) out.write({{"text", r.response}});
    }
    out.commit();
  }
  text::SentencePieceTrainOptions options;
  options.input = corpus.string();
  options.field = "text";
  options.out_dir = dir.string() + ".tmp";
  options.vocab_size = c.tokenizer.train.vocab_size;
  options.model_type = c.tokenizer.train.model_type;
  options.user_symbols = c.tokenizer.train.user_symbols;
  options.split_digits = c.tokenizer.train.split_digits;
  fs::remove_all(options.out_dir);
  text::train_sentencepiece(options);
  fs::rename(options.out_dir, dir);  // complete or absent
  fs::remove(corpus);
  return dir.string();
}

// Targets that count in the loss: ids[t] for t >= max(prompt_tokens, 1).
int64_t counted_targets(const SftExample& e) {
  const int64_t n = static_cast<int64_t>(e.ids.size());
  return std::max<int64_t>(0, n - std::max<int64_t>(e.prompt_tokens, 1));
}

bool prepare_stage(config::Config& config, const std::string& run_dir, const StopSignal* stop,
                   DataParallel* ranks, std::vector<std::string> chain) {
  if (config.model.init != config::ModelInit::sft) return true;
  const std::string path = config.model.sft_config;
  GRPO_CHECK_KIND(config, fs::is_regular_file(path), "model.sft_config '", path,
                  "' is not a file (paths are relative to the working directory)");
  const std::string canonical = fs::weakly_canonical(path).string();
  std::string trail;
  for (const auto& p : chain) trail += p + " -> ";
  GRPO_CHECK_KIND(config, std::find(chain.begin(), chain.end(), canonical) == chain.end(),
                  "model.sft_config: the SFT stages form a cycle: ", trail, canonical);
  chain.push_back(canonical);

  config::Config stage = config::load_config(path).config;
  const std::string stage_dir = config.model.sft_run_dir.empty()
                                    ? (fs::path(run_dir) / "sft").string()
                                    : config.model.sft_run_dir;
  if (!prepare_stage(stage, stage_dir, stop, ranks, chain)) return false;
  std::string checkpoint;
  if (auto latest = CheckpointManager(stage_dir, stage.checkpoint.keep_last).latest()) {
    const auto state = read_trainer_state((fs::path(latest->dir) / kTrainerStateFile).string());
    if (state.extra.value(kCompleteKey, false)) {
      // A finished stage is reused unless what it learned, or how long it trained, differs.
      auto drift = config_drift(latest->dir, state, stage);
      for (const auto& change : drift.allowed) {
        if (change.key == "sft.epochs" || change.key == "trainer.steps") {
          drift.learned.push_back(change);
        }
      }
      GRPO_CHECK_KIND(config, drift.learned.empty(), "the SFT stage in ", stage_dir,
                      " was trained with another config than ", path,
                      " now gives: ", describe_changes(drift.learned),
                      " (stage -> now); delete that folder, or point model.sft_run_dir elsewhere");
      log::info("base model: reusing the SFT stage ", latest->dir, " (", path, ")");
      checkpoint = latest->dir;
    }
  }
  if (checkpoint.empty()) {
    GRPO_CHECK_KIND(config, stage.checkpoint.save_final, path,
                    ": checkpoint.save_final must be true in an SFT stage (its final policy is "
                    "the base model)");
    log::info("base model: training the SFT stage ", path, " in ", stage_dir);
    TrainOptions options;
    options.run_dir = stage_dir;
    options.resume = "auto";  // an interrupted stage continues
    if (ranks) {              // the ranks train the stage together, in their process group
      options.dist = ranks->env();
      options.data_parallel = ranks;
    }
    const auto summary = run_sft(stage, options, stop);
    if (summary.stopped_by_signal) return false;
    // Rank 0 wrote the final checkpoint; the others wait for it and find it on disk.
    if (ranks && ranks->active()) ranks->sum({0.0}, "SFT stage checkpoint");
    const auto latest = CheckpointManager(stage_dir, stage.checkpoint.keep_last).latest();
    GRPO_CHECK(latest.has_value(), "the SFT stage ", path, " wrote no final checkpoint");
    checkpoint = latest->dir;
  }
  config.model.path = (fs::path(checkpoint) / kPolicyDir).string();
  return true;
}

}  // namespace

SftExample encode_sft_example(const data::PromptRecord& record, const config::SftConfig& sft,
                              const text::Tokenizer& tokenizer,
                              const text::PromptTemplate& prompt_template, int64_t max_len) {
  SftExample e;
  if (sft.format == config::SftFormat::text) {
    e.ids = tokenizer.encode(record.prompt);
  } else {
    e.ids = tokenizer.encode(prompt_template.render(record.prompt));
    if (!sft.loss_on_prompt) e.prompt_tokens = static_cast<int64_t>(e.ids.size());
    const auto response = tokenizer.encode(record.response);
    e.ids.insert(e.ids.end(), response.begin(), response.end());
  }
  if (sft.append_eos) {
    GRPO_CHECK_KIND(config, tokenizer.eos_id().has_value(),
                    "sft.append_eos is true but the tokenizer has no eos token");
    e.ids.push_back(*tokenizer.eos_id());
  }
  if (static_cast<int64_t>(e.ids.size()) > max_len) {
    e.ids.resize(static_cast<size_t>(max_len));
    e.truncated = true;
  }
  return e;
}

SftBatch make_sft_batch(const std::vector<SftExample>& examples) {
  const int64_t n = static_cast<int64_t>(examples.size());
  GRPO_CHECK(n > 0, "make_sft_batch: no examples");
  int64_t length = 2;
  for (const auto& e : examples) length = std::max<int64_t>(length, e.ids.size());
  SftBatch b;
  b.input_ids = at::zeros({n, length}, at::kLong);
  b.attention_mask = at::zeros({n, length}, at::kLong);
  b.loss_mask = at::zeros({n, length - 1}, at::kFloat);
  auto ids = b.input_ids.accessor<int64_t, 2>();
  auto att = b.attention_mask.accessor<int64_t, 2>();
  auto mask = b.loss_mask.accessor<float, 2>();
  for (int64_t i = 0; i < n; ++i) {
    const auto& e = examples[static_cast<size_t>(i)];
    const int64_t len = static_cast<int64_t>(e.ids.size());
    for (int64_t t = 0; t < len; ++t) {
      ids[i][t] = e.ids[static_cast<size_t>(t)];
      att[i][t] = 1;
    }
    // logits[t] predict ids[t + 1]; the first counted target is ids[max(prompt_tokens, 1)].
    for (int64_t t = std::max<int64_t>(e.prompt_tokens, 1); t < len; ++t) mask[i][t - 1] = 1.0f;
  }
  return b;
}

SftLoss sft_loss(model::CausalLM& model, const SftBatch& batch) {
  // Right padding under causal attention: real tokens never see the padding, so the
  // attention mask is not needed; only the counted targets are projected onto the vocabulary.
  const auto picked =
      next_token_logprobs(model, batch.input_ids, at::Tensor(), batch.loss_mask, 1.0, false);
  SftLoss out;
  out.loss_sum = -picked.values.logprobs.sum();
  out.tokens = static_cast<double>(picked.positions.size(0));
  out.correct = picked.values.top.sum().item<double>();
  return out;
}

int64_t sft_steps(const config::Config& config, size_t examples) {
  if (config.sft.epochs <= 0) return config.trainer.steps;
  const double steps =
      std::ceil(config.sft.epochs * static_cast<double>(examples) / config.sft.batch_size);
  return std::max<int64_t>(1, static_cast<int64_t>(steps));
}

TrainSummary run_sft(const config::Config& c, const TrainOptions& options, const StopSignal* stop) {
  const at::Device device = rank_device(pick_device(c.trainer.device), options.dist);
  // Data parallelism (grpo launch, torchrun, Slurm): each rank takes a contiguous share of every
  // batch; the identity in one process.
  std::unique_ptr<DataParallel> own_dp;
  DataParallel& dp =
      run_data_parallel(options.data_parallel, own_dp, c.distributed, options.dist, device);
  dp.check_config(config::config_hash(c));
  GRPO_CHECK_KIND(config, c.sft.batch_size >= dp.world_size(), "sft.batch_size (", c.sft.batch_size,
                  ") must be at least the number of ranks (", dp.world_size(), ")");
  torch::manual_seed(dist::rank_seed(static_cast<uint64_t>(c.trainer.seed), dp.rank()));
  if (c.trainer.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);

  text::TemplateConfig tc;
  tc.name = c.tokenizer.template_name;
  tc.custom = c.tokenizer.custom_template;
  tc.system = c.tokenizer.system;
  const text::PromptTemplate prompt_template(tc);
  auto records = load_records(c);
  fs::create_directories(options.run_dir);
  std::optional<RunDirLock> lock;  // rank 0 writes the run directory: one such run at a time
  if (dp.is_main()) lock.emplace(options.run_dir);
  // tokenizer.train: rank 0 trains it, the others wait and load it.
  std::string tokenizer_dir = c.tokenizer.path.empty() ? c.model.path : c.tokenizer.path;
  if (c.tokenizer.train.vocab_size > 0) {
    if (dp.is_main()) tokenizer_dir = train_tokenizer(c, records, prompt_template, options.run_dir);
    dp.sum({0.0}, "tokenizer training");  // a barrier
    tokenizer_dir = (fs::path(options.run_dir) / "tokenizer").string();
  }
  GRPO_CHECK_KIND(config, !tokenizer_dir.empty(),
                  "tokenizer.path (or tokenizer.train.vocab_size) is required when the model is "
                  "built from scratch");
  const auto tokenizer = text::load_tokenizer(tokenizer_dir);
  data::PromptDataset dataset(std::move(records), c.data.shuffle,
                              static_cast<uint64_t>(c.data.seed));

  config::TrainerConfig schedule = c.trainer;  // the learning-rate schedule spans these steps
  schedule.steps = static_cast<int>(sft_steps(c, dataset.size()));
  const std::string hash = config::config_hash(c);
  const std::string config_yaml = config::to_yaml(c);  // config.resolved.yaml and checkpoints
  TrainSummary summary;
  NonFiniteGuard guard(c.trainer.max_nonfinite_steps);
  auto policy = model::build_model(c.model, tokenizer->vocab_size());
  const auto resume = resolve_resume(options.resume, options.run_dir, c, options.force_resume);
  if (dp.is_main()) {  // only once the resume is accepted: a refused one changes nothing
    jsonl::AtomicWriter out((fs::path(options.run_dir) / "config.resolved.yaml").string());
    out.write(config_yaml);
    out.commit();
  }
  if (resume) {
    policy = load_checkpoint_policy(policy, c.model, resume->dir);
    summary.first_step = resume->state.step;
  }
  dp.check_resume_step(summary.first_step);
  policy->set_gradient_checkpointing(c.trainer.gradient_checkpointing);
  policy->to(device);
  policy->train();
  const auto params = trainable_parameters(*policy);
  dp.start(params);  // identical parameters on every rank, gradient buckets
  auto optimizer = dp.make_optimizer(params, schedule);
  if (resume) {
    optimizer->load((fs::path(resume->dir) / kOptimizerFile).string());
    if (dp.is_main()) restore_torch_rng(resume->state.rng_states);  // rank 0's stream
    dataset.restore(data::DataCursor::from_json(resume->state.data_cursor));
    guard.restore(resume->state.extra.value("nonfinite_consecutive", 0),
                  resume->state.extra.value("nonfinite_total", int64_t{0}));
  }
  const int64_t max_len =
      c.sft.max_seq_len > 0 ? c.sft.max_seq_len : policy->arch().max_position_embeddings;
  const int64_t batch_size = c.sft.batch_size;
  // This rank's contiguous share of each batch: [share_begin, share_end).
  const auto range =
      data::uneven_shard_range(static_cast<size_t>(batch_size), dp.rank(), dp.world_size());
  const auto share_begin = static_cast<int64_t>(range.begin);
  const auto share_end = static_cast<int64_t>(range.end);
  const int64_t share = share_end - share_begin;
  const int64_t micro =
      c.trainer.micro_batch_size > 0 ? std::min<int64_t>(c.trainer.micro_batch_size, share) : share;
  const std::string ranks =
      dp.active() ? " over " + std::to_string(dp.world_size()) + " ranks" : std::string();
  log::info("SFT of ", model::count_parameters(policy->arch()).total, " parameters on ",
            device.str(), ranks, ": ", schedule.steps, " steps x ", batch_size, " examples (",
            dataset.size(), " examples, ",
            static_cast<double>(schedule.steps) * batch_size / dataset.size(), " epochs)");

  config::LoggingConfig logging = c.logging;
  logging.samples_per_step = 0;   // SFT samples nothing
  std::optional<RunSinks> sinks;  // rank 0 writes the metrics
  if (dp.is_main()) {
    sinks.emplace(options.run_dir, logging, schedule.steps,
                  resume ? std::optional<int64_t>(summary.first_step) : std::nullopt);
  }
  // Held-out validation (`validation:`), sampled and scored as in grpo train, each rank a share
  // of the items.
  std::unique_ptr<reward::RewardPipeline> rewards;
  std::unique_ptr<Validator> validator;
  if (c.validation.enabled()) {
    GRPO_CHECK_KIND(config, !c.reward.functions.empty(),
                    "validation: scoring needs reward.functions (a correctness reward such as "
                    "math_boxed or countdown) in the SFT config");
    rewards = std::make_unique<reward::RewardPipeline>(c.reward, options.reward_threads);
    validator = std::make_unique<Validator>(c, *tokenizer, prompt_template, *rewards, dp);
    if (!resume && c.validation.before_train) {
      metrics::StepMetrics m(0);
      validator->run(policy, 0, options.run_dir, m);
      if (sinks) sinks->write_record(m);
    }
  }
  CheckpointManager checkpoints(options.run_dir, c.checkpoint.keep_last);
  auto save = [&](int64_t steps_done) {
    optimizer->gather_for_save();  // every rank: a sharded state comes together on rank 0
    if (!dp.is_main()) return;     // rank 0 writes checkpoints; every rank resumes from them
    TrainerState state;
    state.step = steps_done;
    state.config_hash = hash;
    state.config_yaml = config_yaml;
    state.data_cursor = dataset.cursor().to_json();
    state.rng_states = capture_torch_rng();
    state.extra = {{"nonfinite_consecutive", guard.consecutive()},
                   {"nonfinite_total", guard.total_skipped()},
                   {kCompleteKey, steps_done == schedule.steps}};
    CheckpointWriters writers;
    set_policy_writers(writers, policy, c.model, tokenizer_dir);
    writers.optimizer = [&](const std::string& path) { optimizer->save(path); };
    summary.last_checkpoint = checkpoints.save(state, writers);
  };

  int64_t step = summary.first_step;
  for (; step < schedule.steps; ++step) {
    const auto step_start = Clock::now();
    metrics::StepMetrics m(step + 1);
    const double lr = learning_rate(schedule, step);
    optimizer->set_learning_rate(lr);
    // Every rank draws the same batch and encodes its share.
    const auto batch_records = dataset.next_batch(static_cast<size_t>(batch_size));
    std::vector<SftExample> examples;
    double local_counted = 0;
    for (int64_t i = share_begin; i < share_end; ++i) {
      examples.push_back(encode_sft_example(batch_records[static_cast<size_t>(i)], c.sft,
                                            *tokenizer, prompt_template, max_len));
      local_counted += static_cast<double>(counted_targets(examples.back()));
    }
    // Normalised by the whole batch's counted tokens (all ranks): neither micro-batching nor the
    // number of ranks changes the step.
    const double counted = dp.sum({local_counted}, "SFT token count")[0];
    optimizer->zero_grad();
    double loss_sum = 0, correct = 0, real_tokens = 0, truncated = 0;
    std::vector<int64_t> lengths;
    for (const auto& e : examples) {
      lengths.push_back(static_cast<int64_t>(e.ids.size()));
      real_tokens += static_cast<double>(e.ids.size());
      truncated += e.truncated ? 1 : 0;
    }
    // Longest first, so each micro-batch pads to lengths close to its own (and, with
    // trainer.max_tokens_per_micro_batch, holds at most that many tokens).
    const auto micro_batches =
        length_sorted_micro_batches(lengths, 0, share, micro, c.trainer.max_tokens_per_micro_batch);
    for (size_t k = 0; k < micro_batches.size(); ++k) {
      std::vector<SftExample> chunk;
      for (int64_t i : micro_batches[k]) chunk.push_back(examples[static_cast<size_t>(i)]);
      auto batch = make_sft_batch(chunk);
      batch.input_ids = batch.input_ids.to(device);
      batch.loss_mask = batch.loss_mask.to(device);
      auto out = sft_loss(policy, batch);
      if (k + 1 == micro_batches.size()) dp.before_last_backward();
      if (counted > 0) (out.loss_sum / counted).backward();
      loss_sum += out.loss_sum.item<double>();
      correct += out.correct;
    }
    dp.reduce_gradients();
    const auto sums = dp.sum({loss_sum, correct, real_tokens, truncated}, "SFT step sums");
    loss_sum = sums[0];
    correct = sums[1];
    real_tokens = sums[2];
    truncated = sums[3];
    const double grad_norm = clip_grad_norm(params, c.trainer.max_grad_norm);
    const double loss = loss_sum / std::max(counted, 1.0);
    const bool ok = guard.check(step + 1, loss, grad_norm, params);
    if (ok) {
      optimizer->step();
    } else {
      optimizer->zero_grad();
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    m.set("loss", loss);
    m.set("token_accuracy", correct / std::max(counted, 1.0));
    m.set("grad_norm", grad_norm);
    m.set("lr", lr);
    m.set("epoch", static_cast<double>((step + 1) * batch_size) / dataset.size());
    m.set("tokens", counted);
    m.set("truncated_frac", truncated / batch_size);
    m.set("micro_batches", static_cast<double>(micro_batches.size()));
    m.set("nonfinite/skipped_steps", ok ? 0.0 : 1.0);
    m.set("throughput/tokens_per_s", real_tokens / std::max(seconds, 1e-9));
    m.set("time/step", seconds);
    const bool last = step + 1 == schedule.steps;
    if (validator && validator->due(step + 1, last)) {
      validator->run(policy, step + 1, options.run_dir, m);
    }
    if (sinks) sinks->write(m);

    dp.periodic_check(step + 1, params);
    const bool stopping = dp.any(stop != nullptr && stop->requested(), "stop signal");
    const bool periodic = c.checkpoint.every > 0 && (step + 1) % c.checkpoint.every == 0;
    if (periodic || stopping || (last && c.checkpoint.save_final)) save(step + 1);
    if (stopping) {
      summary.stopped_by_signal = true;
      ++step;
      break;
    }
  }
  if (sinks) sinks->finish();
  dp.release();
  summary.last_step = step;
  return summary;
}

bool prepare_base_model(config::Config& config, const std::string& run_dir, const StopSignal* stop,
                        DataParallel* ranks) {
  return prepare_stage(config, run_dir, stop, ranks, {});
}

}  // namespace grpo::train

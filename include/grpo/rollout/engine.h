// The rollout engine: samples G completions per prompt with the policy's own CausalLM (same
// module, same parameters as the trainer) and records each sampled token's log-probability.
// Prefix sharing, batched decoding with compaction and waves are described in docs/rollout.md.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config/rollout.h"
#include "grpo/model/modules.h"
#include "grpo/text/tokenizer.h"

namespace grpo::rollout {

enum class FinishReason { eos, stop, length };
const char* finish_reason_name(FinishReason reason);  // "eos" | "stop" | "length"

struct SamplingParams {
  int max_new_tokens = 512;
  double temperature = 1.0;             // 0: greedy (argmax)
  double top_p = 1.0;                   // (0, 1]; 1: off
  int top_k = 0;                        // 0: off
  double min_p = 0.0;                   // [0, 1]; 0: off
  std::vector<std::string> stop;        // stop strings, matched on decoded text (needs a tokenizer)
  bool include_stop_str = false;        // text keeps the matched stop string (cut after it)
  std::vector<int32_t> stop_token_ids;  // in addition to the tokenizer's eos
  bool ignore_eos = false;  // fixed-length mode (benchmarks): no eos, stop ids or stop strings
  // Record Rollout::entropies (algorithm.top_entropy_quantile): one more pass over the
  // vocabulary per token.
  bool record_entropy = false;
  uint64_t seed = 0;  // same seed, prompts and G -> same output on the same device/build
  // Added to each prompt's index when drawing its random numbers: a rank that samples its shard
  // of a global batch passes the shard's first global index, so every prompt samples what it
  // would in a single process (the run does not depend on the number of ranks).
  int64_t first_prompt_index = 0;
};

SamplingParams sampling_params_from(const config::RolloutConfig& config, uint64_t seed);

// The temperature at which log-probs are recorded: T, or 1 for greedy (T = 0). The trainer
// computes log_softmax(logits / logprob_temperature(params)) at the sampled tokens.
double logprob_temperature(const SamplingParams& params);

// One sampled completion. Crosses into the train layer.
struct Rollout {
  int64_t prompt_index = 0;  // into the prompts passed to generate()
  int64_t sample_index = 0;  // 0 .. G-1
  std::vector<int32_t> prompt_ids;
  // Sampled tokens, the eos / stop token and the tokens that completed a stop string included.
  std::vector<int32_t> completion_ids;
  // log_softmax(logits / logprob_temperature) of each completion token under the full
  // (untruncated by top-k/top-p/min-p) distribution: what the trainer's forward recomputes.
  std::vector<float> logprobs;
  // With SamplingParams::record_entropy: the entropy of that same distribution at each token
  // (nats); otherwise empty.
  std::vector<float> entropies;
  FinishReason finish_reason = FinishReason::length;
  // With a tokenizer: the decoded completion, special tokens skipped, eos excluded and cut
  // before a matched stop string (after it with SamplingParams::include_stop_str).
  std::string text;
};

struct EngineOptions {
  // Cap on rows x (padded prompt + max_new_tokens) KV positions held at once; 0: no cap.
  // Larger workloads run in waves; a single row that exceeds the cap still runs alone.
  int64_t max_tokens_in_flight = 0;
  bool share_prefix = true;  // prefill each distinct prompt once (off: once per sample)
  // Finished rows leave the decode batch once they are at least this fraction of it (the
  // cache copy of a compaction is then amortised); 0: compact after every finished row.
  double compact_fraction = 0.125;
  // On the CPU, multiply the output projection against an (H, V) copy of the output weight
  // made at the start of each generate() call and dropped at its end (ForwardOptions::
  // output_weight_t): OpenBLAS otherwise repacks the (V, H) weight on every decode step. Costs
  // one output matrix of memory while generating.
  bool transposed_output_copy = true;
};

EngineOptions engine_options_from(const config::RolloutConfig& config);

// Figures of the last generate() call (benchmarks, metrics).
struct RolloutStats {
  int64_t waves = 0;
  int64_t prefill_tokens = 0;         // real prompt tokens run through the model
  int64_t prefill_padded_tokens = 0;  // including left padding
  int64_t generated_tokens = 0;
  int64_t decode_steps = 0;  // batched decode forwards
  int64_t decode_rows = 0;   // sum over decode forwards of the rows in the batch
  double prefill_seconds = 0;
  double decode_seconds = 0;  // decode forwards, sampling and bookkeeping
};

struct Progress {
  int64_t generated_tokens = 0;
  int64_t finished_rollouts = 0;
  int64_t total_rollouts = 0;
};

class RolloutEngine {
 public:
  // `model` is the policy itself (a module handle: no copy of the weights). `tokenizer` (may be
  // null) supplies eos, stop-string matching and Rollout::text; it must outlive the engine.
  RolloutEngine(model::CausalLM model, const text::Tokenizer* tokenizer,
                EngineOptions options = {});

  // G completions for each prompt, ordered prompt-major (index p * G + g). Every input is
  // validated before any work starts. Runs without autograd on the model's device.
  std::vector<Rollout> generate(const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                                const SamplingParams& params);

  const RolloutStats& last_stats() const { return stats_; }
  // Called after every decode step (CLI progress bars).
  void set_progress_callback(std::function<void(const Progress&)> callback) {
    progress_ = std::move(callback);
  }

 private:
  struct Wave;
  void validate(const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                const SamplingParams& params) const;
  std::vector<Wave> plan_waves(const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                               int64_t max_new_tokens) const;
  void run_wave(const Wave& wave, const std::vector<std::vector<int32_t>>& prompts,
                const SamplingParams& params, const at::Tensor& output_weight_t,
                std::vector<Rollout>& out, Progress& progress);

  model::CausalLM model_;
  const text::Tokenizer* tokenizer_;
  EngineOptions options_;
  RolloutStats stats_;
  std::function<void(const Progress&)> progress_;
};

}  // namespace grpo::rollout

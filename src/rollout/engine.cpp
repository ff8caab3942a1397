// RolloutEngine: input validation, wave planning, prefix-shared prefill, and the batched decode
// loop with compaction and stop handling (include/grpo/rollout/engine.h, docs/rollout.md).
#include "grpo/rollout/engine.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/rollout/sampling.h"

namespace grpo::rollout {

const char* finish_reason_name(FinishReason reason) {
  switch (reason) {
    case FinishReason::eos:
      return "eos";
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
  }
  return "?";
}

SamplingParams sampling_params_from(const config::RolloutConfig& c, uint64_t seed) {
  SamplingParams p;
  p.max_new_tokens = c.max_new_tokens;
  p.temperature = c.temperature;
  p.top_p = c.top_p;
  p.top_k = c.top_k;
  p.min_p = c.min_p;
  p.stop = c.stop;
  p.include_stop_str = c.include_stop_str;
  p.seed = seed;
  return p;
}

double logprob_temperature(const SamplingParams& params) {
  return params.temperature > 0 ? params.temperature : 1.0;
}

EngineOptions engine_options_from(const config::RolloutConfig& c) {
  EngineOptions o;
  o.max_tokens_in_flight = c.max_tokens_in_flight;
  return o;
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Elements one prefill chunk may materialise for its MLP activations (U, c, I) or attention
// scores (U, Hq, c, S): 2^27 fp32 values = 512 MiB. Chunks split the padded prompt along time.
// (Logits are computed for each chunk's last position only: (U, 1, V).)
constexpr int64_t kPrefillElements = int64_t{1} << 27;

// Per-row host state of the decode loop.
struct Row {
  int64_t prompt = 0, sample = 0;
  int64_t out = 0;      // index into the result vector
  int64_t max_new = 0;  // max_new_tokens, clipped to the context left after the prompt
  bool finished = false;
  std::optional<text::IncrementalDecoder> decoder;
};

// Appends the decoded piece of `token` and reports a stop string that ends inside it: the
// text is cut before the earliest match, or after it with include_stop. Returns true when one
// matched.
bool push_text(Row& row, Rollout& r, int32_t token, const std::vector<std::string>& stops,
               size_t longest_stop, bool include_stop) {
  if (!row.decoder) return false;
  const size_t before = r.text.size();
  r.text += row.decoder->push(token);
  if (stops.empty() || r.text.size() == before) return false;
  // Only matches that end in the new text are new: start the search longest-1 bytes earlier.
  const size_t from = before >= longest_stop - 1 ? before - (longest_stop - 1) : 0;
  size_t best = std::string::npos, best_size = 0;
  for (const auto& s : stops) {
    const size_t at = r.text.find(s, from);
    // The earliest match; of two starting there, the longer one is kept whole.
    if (at < best || (at == best && at != std::string::npos && s.size() > best_size)) {
      best = at;
      best_size = s.size();
    }
  }
  if (best == std::string::npos) return false;
  r.text.resize(include_stop ? best + best_size : best);
  return true;
}

}  // namespace

struct RolloutEngine::Wave {
  std::vector<std::pair<int64_t, int64_t>> rows;  // (prompt index, sample index)
};

RolloutEngine::RolloutEngine(model::CausalLM model, const text::Tokenizer* tokenizer,
                             EngineOptions options)
    : model_(std::move(model)), tokenizer_(tokenizer), options_(options) {
  GRPO_CHECK(!model_.is_empty(), "RolloutEngine: no model");
  GRPO_CHECK_KIND(config, options_.max_tokens_in_flight >= 0,
                  "rollout.max_tokens_in_flight must be >= 0, got ", options_.max_tokens_in_flight);
  GRPO_CHECK_KIND(config, options_.compact_fraction >= 0 && options_.compact_fraction <= 1,
                  "compact_fraction must be in [0, 1], got ", options_.compact_fraction);
}

void RolloutEngine::validate(const std::vector<std::vector<int32_t>>& prompts, int64_t G,
                             const SamplingParams& p) const {
  GRPO_CHECK_KIND(usage, G >= 1, "generate: G (samples per prompt) must be >= 1, got ", G);
  GRPO_CHECK_KIND(usage, !prompts.empty(), "generate: no prompts");
  GRPO_CHECK_KIND(config, p.max_new_tokens >= 1, "sampling: max_new_tokens must be >= 1, got ",
                  p.max_new_tokens);
  GRPO_CHECK_KIND(config, std::isfinite(p.temperature) && p.temperature >= 0,
                  "sampling: temperature must be a finite number >= 0, got ", p.temperature);
  GRPO_CHECK_KIND(config, p.top_p > 0 && p.top_p <= 1, "sampling: top_p must be in (0, 1], got ",
                  p.top_p);
  GRPO_CHECK_KIND(config, p.top_k >= 0, "sampling: top_k must be >= 0, got ", p.top_k);
  GRPO_CHECK_KIND(config, p.min_p >= 0 && p.min_p <= 1, "sampling: min_p must be in [0, 1], got ",
                  p.min_p);
  for (const auto& s : p.stop) GRPO_CHECK_KIND(config, !s.empty(), "sampling: empty stop string");
  GRPO_CHECK_KIND(config, p.stop.empty() || tokenizer_ != nullptr,
                  "sampling: stop strings need a tokenizer to decode the completions");
  const auto& arch = model_->arch();
  for (const int32_t id : p.stop_token_ids) {
    GRPO_CHECK_KIND(config, id >= 0 && id < arch.vocab_size, "sampling: stop token id ", id,
                    " outside the vocabulary [0, ", arch.vocab_size, ")");
  }
  const int64_t context = arch.max_position_embeddings;
  for (size_t i = 0; i < prompts.size(); ++i) {
    const auto& prompt = prompts[i];
    GRPO_CHECK_KIND(usage, !prompt.empty(), "generate: prompt ", i, " is empty");
    GRPO_CHECK_KIND(usage, static_cast<int64_t>(prompt.size()) < context, "generate: prompt ", i,
                    " has ", prompt.size(), " tokens; the model's context is ", context,
                    " positions, leaving no room to generate");
    for (const int32_t id : prompt) {
      GRPO_CHECK_KIND(usage, id >= 0 && id < arch.vocab_size, "generate: prompt ", i,
                      " holds token id ", id, " outside the vocabulary [0, ", arch.vocab_size, ")");
    }
  }
}

std::vector<RolloutEngine::Wave> RolloutEngine::plan_waves(
    const std::vector<std::vector<int32_t>>& prompts, int64_t G, int64_t max_new) const {
  // Longest prompts first: a wave's padded length is its first prompt's, so similar lengths
  // share a wave. The order does not change any output (per-sequence random streams).
  std::vector<int64_t> order(prompts.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return prompts[a].size() > prompts[b].size(); });
  const int64_t cap = options_.max_tokens_in_flight;
  std::vector<Wave> waves(1);
  int64_t row_len = 0;  // padded prompt + max_new of the current wave
  for (const int64_t p : order) {
    for (int64_t g = 0; g < G; ++g) {
      Wave& w = waves.back();
      if (w.rows.empty()) row_len = static_cast<int64_t>(prompts[p].size()) + max_new;
      if (cap > 0 && !w.rows.empty() && static_cast<int64_t>(w.rows.size() + 1) * row_len > cap) {
        waves.emplace_back();
        row_len = static_cast<int64_t>(prompts[p].size()) + max_new;
      }
      waves.back().rows.emplace_back(p, g);
    }
  }
  return waves;
}

std::vector<Rollout> RolloutEngine::generate(const std::vector<std::vector<int32_t>>& prompts,
                                             int64_t G, const SamplingParams& params) {
  validate(prompts, G, params);
  stats_ = RolloutStats{};
  c10::InferenceMode inference;
  std::vector<Rollout> out(prompts.size() * static_cast<size_t>(G));
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (int64_t g = 0; g < G; ++g) {
      Rollout& r = out[p * G + g];
      r.prompt_index = static_cast<int64_t>(p);
      r.sample_index = g;
      r.prompt_ids = prompts[p];
    }
  }
  Progress progress;
  progress.total_rollouts = static_cast<int64_t>(out.size());
  // A copy of this call's weights, not a cache: nothing can go stale across optimizer steps.
  at::Tensor output_weight_t;
  const at::Tensor output = model_->output_embedding();
  if (options_.transposed_output_copy && output.device().is_cpu()) {
    output_weight_t = output.t().contiguous();
  }
  for (const Wave& wave : plan_waves(prompts, G, params.max_new_tokens)) {
    run_wave(wave, prompts, params, output_weight_t, out, progress);
    ++stats_.waves;
  }
  return out;
}

void RolloutEngine::run_wave(const Wave& wave, const std::vector<std::vector<int32_t>>& prompts,
                             const SamplingParams& params, const at::Tensor& output_weight_t,
                             std::vector<Rollout>& out, Progress& progress) {
  const auto start = Clock::now();
  const auto& arch = model_->arch();
  const at::Device device = model_->output_embedding().device();
  const int64_t n_rows = static_cast<int64_t>(wave.rows.size());
  const int64_t G = out.size() / prompts.size();

  // Prefill rows: each distinct prompt once (by content) when sharing, else every row.
  std::vector<int64_t> prefill_prompt;  // prompt index per prefill row
  std::vector<int64_t> row_source(n_rows);
  std::map<std::vector<int32_t>, int64_t> seen;
  for (int64_t i = 0; i < n_rows; ++i) {
    const int64_t p = wave.rows[i].first;
    if (options_.share_prefix) {
      auto it = seen.emplace(prompts[p], static_cast<int64_t>(prefill_prompt.size())).first;
      if (it->second == static_cast<int64_t>(prefill_prompt.size())) prefill_prompt.push_back(p);
      row_source[i] = it->second;
    } else {
      row_source[i] = static_cast<int64_t>(prefill_prompt.size());
      prefill_prompt.push_back(p);
    }
  }
  const int64_t n_prefill = static_cast<int64_t>(prefill_prompt.size());
  int64_t padded_len = 0, shortest = std::numeric_limits<int64_t>::max(), longest_new = 0;
  for (const int64_t p : prefill_prompt) {
    padded_len = std::max<int64_t>(padded_len, prompts[p].size());
    shortest = std::min<int64_t>(shortest, prompts[p].size());
  }
  std::vector<Row> rows(n_rows);
  for (int64_t i = 0; i < n_rows; ++i) {
    Row& row = rows[i];
    std::tie(row.prompt, row.sample) = wave.rows[i];
    row.out = row.prompt * G + row.sample;
    row.max_new = std::min<int64_t>(
        params.max_new_tokens,
        arch.max_position_embeddings - static_cast<int64_t>(prompts[row.prompt].size()));
    longest_new = std::max(longest_new, row.max_new);
    if (tokenizer_ != nullptr) row.decoder.emplace(*tokenizer_, /*skip_special=*/true);
  }
  const bool padded = shortest < padded_len;
  const int64_t capacity = padded_len + longest_new;

  // Left-padded prompt ids (U, P) and the key mask (U, capacity): 0 on padding, 1 elsewhere.
  std::vector<int64_t> ids_host(n_prefill * padded_len, 0);
  std::vector<int64_t> pad_host(n_prefill);
  for (int64_t u = 0; u < n_prefill; ++u) {
    const auto& prompt = prompts[prefill_prompt[u]];
    pad_host[u] = padded_len - static_cast<int64_t>(prompt.size());
    std::copy(prompt.begin(), prompt.end(), ids_host.begin() + u * padded_len + pad_host[u]);
    stats_.prefill_tokens += static_cast<int64_t>(prompt.size());
  }
  stats_.prefill_padded_tokens += n_prefill * padded_len;
  const auto long_cpu = at::TensorOptions().dtype(at::kLong);
  const at::Tensor ids =
      at::from_blob(ids_host.data(), {n_prefill, padded_len}, long_cpu).to(device);   // (U, P)
  at::Tensor pad = at::from_blob(pad_host.data(), {n_prefill}, long_cpu).to(device);  // (U)
  const at::Tensor slots = at::arange(capacity, device).unsqueeze(0);  // (1, capacity)
  at::Tensor mask = slots >= pad.unsqueeze(1);                         // (U, capacity) bool
  // Absolute positions of the prompt slots: j - pad, clamped at 0 on the (masked) padding.
  const at::Tensor positions = (slots.narrow(1, 0, padded_len) - pad.unsqueeze(1)).clamp_min(0);

  model::KVCache cache = model_->make_cache(n_prefill, capacity);
  const int64_t widest = std::max(arch.intermediate_size, arch.num_heads * padded_len);
  const int64_t chunk = std::clamp<int64_t>(
      kPrefillElements / std::max<int64_t>(1, n_prefill * widest), 1, padded_len);
  at::Tensor logits;  // (rows, V) of the next token
  for (int64_t s = 0; s < padded_len; s += chunk) {
    const int64_t n = std::min(chunk, padded_len - s);
    model::ForwardOptions fo;
    fo.cache = &cache;
    fo.output_weight_t = output_weight_t;
    fo.position_ids = positions.narrow(1, s, n);
    if (padded) fo.attention_mask = mask.narrow(1, 0, s + n);
    fo.logits_to_keep = 1;  // the next token's logits only
    logits = model_->forward(ids.narrow(1, s, n), fo).logits.select(1, 0);
  }
  // Share each prompt's cache with its samples: (U, ...) -> (rows, ...).
  bool identity = n_prefill == n_rows;
  for (int64_t i = 0; identity && i < n_rows; ++i) identity = row_source[i] == i;
  if (!identity) {
    const at::Tensor src = at::from_blob(row_source.data(), {n_rows}, long_cpu).to(device);
    cache.select(src);
    logits = logits.index_select(0, src);
    mask = mask.index_select(0, src);
    pad = pad.index_select(0, src);
  }
  const double prefill_s = seconds_since(start);
  stats_.prefill_seconds += prefill_s;
  const auto decode_start = Clock::now();

  std::vector<int32_t> stop_ids = params.stop_token_ids;
  if (tokenizer_ != nullptr && tokenizer_->eos_id()) stop_ids.push_back(*tokenizer_->eos_id());
  size_t longest_stop = 0;
  for (const auto& s : params.stop) longest_stop = std::max(longest_stop, s.size());

  std::vector<int64_t> live(n_rows);  // index into `rows` of each batch row
  std::iota(live.begin(), live.end(), 0);
  int64_t finished_in_batch = 0;
  std::vector<double> uniforms;
  while (true) {
    const int64_t batch = static_cast<int64_t>(live.size());
    uniforms.resize(batch);
    for (int64_t b = 0; b < batch; ++b) {
      const Row& row = rows[live[b]];
      uniforms[b] =
          sequence_uniform(params.seed, params.first_prompt_index + row.prompt, row.sample,
                           static_cast<int64_t>(out[row.out].completion_ids.size()));
    }
    const at::Tensor u = at::from_blob(uniforms.data(), {batch}, at::kDouble);
    const Sampled next = sample_next(logits, u, params);
    // One device->host transfer for both (ids are exact in fp64).
    std::vector<at::Tensor> parts{next.tokens.to(at::kDouble), next.logprobs.to(at::kDouble)};
    if (next.entropy.defined()) parts.push_back(next.entropy.to(at::kDouble));
    const at::Tensor host = at::stack(parts).to(at::kCPU).contiguous();
    const double* tok = host.data_ptr<double>();
    const double* lp = tok + batch;
    const double* ent = next.entropy.defined() ? lp + batch : nullptr;
    for (int64_t b = 0; b < batch; ++b) {
      Row& row = rows[live[b]];
      if (row.finished) continue;
      Rollout& r = out[row.out];
      const auto token = static_cast<int32_t>(tok[b]);
      r.completion_ids.push_back(token);
      r.logprobs.push_back(static_cast<float>(lp[b]));
      if (ent) r.entropies.push_back(static_cast<float>(ent[b]));
      ++stats_.generated_tokens;
      ++progress.generated_tokens;
      const bool is_stop_id = !params.ignore_eos &&
                              std::find(stop_ids.begin(), stop_ids.end(), token) != stop_ids.end();
      if (is_stop_id) {
        row.finished = true;
        r.finish_reason = FinishReason::eos;
      } else if (push_text(row, r, token,
                           params.ignore_eos ? std::vector<std::string>{} : params.stop,
                           longest_stop, params.include_stop_str)) {
        row.finished = true;
        r.finish_reason = FinishReason::stop;
      } else if (static_cast<int64_t>(r.completion_ids.size()) >= row.max_new) {
        row.finished = true;
        r.finish_reason = FinishReason::length;
      }
      if (row.finished) {
        if (row.decoder && r.finish_reason != FinishReason::stop) r.text += row.decoder->finish();
        row.decoder.reset();
        ++finished_in_batch;
        ++progress.finished_rollouts;
      }
    }
    if (progress_) progress_(progress);
    if (finished_in_batch == batch) break;

    at::Tensor tokens = next.tokens;  // (batch)
    if (finished_in_batch > 0 &&
        finished_in_batch >= options_.compact_fraction * static_cast<double>(batch)) {
      // Compaction: finished rows leave the batch, so the decode cost follows the live count.
      std::vector<int64_t> keep, keep_live;
      for (int64_t b = 0; b < batch; ++b) {
        if (!rows[live[b]].finished) {
          keep.push_back(b);
          keep_live.push_back(live[b]);
        }
      }
      const at::Tensor k =
          at::from_blob(keep.data(), {static_cast<int64_t>(keep.size())}, long_cpu).to(device);
      cache.select(k);
      mask = mask.index_select(0, k);
      pad = pad.index_select(0, k);
      tokens = tokens.index_select(0, k);
      live = std::move(keep_live);
      finished_in_batch = 0;
    }
    model::ForwardOptions fo;
    fo.cache = &cache;
    fo.output_weight_t = output_weight_t;
    fo.position_ids = (cache.length() - pad).unsqueeze(1);  // (batch, 1)
    if (padded) fo.attention_mask = mask.narrow(1, 0, cache.length() + 1);
    logits = model_->forward(tokens.unsqueeze(1), fo).logits.select(1, 0);  // (batch, V)
    ++stats_.decode_steps;
    stats_.decode_rows += static_cast<int64_t>(live.size());
  }
  stats_.decode_seconds += seconds_since(decode_start);
  log::debug("rollout wave: ", n_rows, " rows from ", n_prefill, " prefills of ", padded_len,
             " tokens in ", prefill_s, " s");
}

}  // namespace grpo::rollout

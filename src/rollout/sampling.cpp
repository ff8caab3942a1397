// Token sampling and the shared token log-prob definition (include/grpo/rollout/sampling.h).
#include "grpo/rollout/sampling.h"

#include <cmath>
#include <tuple>

#include "grpo/core/error.h"

namespace grpo::rollout {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

at::Tensor token_logprobs(const at::Tensor& logits, const at::Tensor& ids, double temperature) {
  GRPO_CHECK(temperature > 0, "token_logprobs: temperature must be > 0, got ", temperature);
  GRPO_CHECK(logits.dim() == ids.dim() + 1, "token_logprobs: logits ", logits.sizes(),
             " must have one more dimension than ids ", ids.sizes());
  at::Tensor scaled = logits.to(at::kFloat);
  if (temperature != 1.0) scaled = scaled / temperature;
  return at::log_softmax(scaled, -1).gather(-1, ids.unsqueeze(-1)).squeeze(-1);
}

double sequence_uniform(uint64_t seed, int64_t prompt_index, int64_t sample_index,
                        int64_t token_index) {
  // Chained so that every input changes every output bit (no xor cancellation between fields).
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ static_cast<uint64_t>(prompt_index));
  h = splitmix64(h ^ static_cast<uint64_t>(sample_index));
  h = splitmix64(h ^ static_cast<uint64_t>(token_index));
  // 32 bits: u * total stays strictly below total in fp64, so the CDF search always lands on a
  // token with non-zero probability.
  return static_cast<double>(h >> 32) * (1.0 / 4294967296.0);
}

at::Tensor filtered_probs(const at::Tensor& logits, const SamplingParams& p) {
  GRPO_CHECK(p.temperature > 0, "filtered_probs: temperature must be > 0 (0 is greedy)");
  at::Tensor probs = at::softmax(logits.to(at::kFloat) / p.temperature, -1);  // (R, V)
  const int64_t vocab = probs.size(-1);
  if (p.top_k > 0 && p.top_k < vocab) {
    // Ties with the k-th probability stay in, as in Hugging Face's TopKLogitsWarper.
    const at::Tensor kth = std::get<0>(probs.topk(p.top_k, -1)).narrow(-1, p.top_k - 1, 1);
    probs = probs.masked_fill(probs < kth, 0);
  }
  if (p.top_p < 1.0) {
    // Keep the most likely tokens until their mass reaches top_p of what survived top-k: a token
    // stays iff the mass strictly before it (in descending order) is below that threshold.
    at::Tensor sorted, order;
    std::tie(sorted, order) = at::sort(probs, /*stable=*/true, -1, /*descending=*/true);
    const at::Tensor before = sorted.cumsum(-1) - sorted;                // (R, V) exclusive cumsum
    const at::Tensor mass = sorted.sum(-1, /*keepdim=*/true) * p.top_p;  // (R, 1)
    const at::Tensor drop_sorted = before >= mass;
    const at::Tensor drop = at::zeros_like(drop_sorted).scatter(-1, order, drop_sorted);
    probs = probs.masked_fill(drop, 0);
  }
  if (p.min_p > 0) {
    const at::Tensor top = probs.amax(-1, /*keepdim=*/true);
    probs = probs.masked_fill(probs < top * p.min_p, 0);
  }
  return probs;
}

Sampled sample_next(const at::Tensor& logits, const at::Tensor& uniforms, const SamplingParams& p) {
  GRPO_CHECK(logits.dim() == 2, "sample_next: logits must be (R, V), got ", logits.sizes());
  Sampled out;
  if (p.temperature == 0) {
    out.tokens = logits.argmax(-1);
  } else {
    // Inverse CDF in fp64: the first token whose cumulative mass exceeds u * total.
    const at::Tensor cdf = filtered_probs(logits, p).to(at::kDouble).cumsum(-1);  // (R, V)
    const at::Tensor target =
        uniforms.to(cdf.device(), at::kDouble) * cdf.narrow(-1, cdf.size(-1) - 1, 1).squeeze(-1);
    out.tokens = (cdf <= target.unsqueeze(-1)).sum(-1).clamp_max(cdf.size(-1) - 1);
  }
  out.logprobs = token_logprobs(logits, out.tokens, logprob_temperature(p));
  return out;
}

}  // namespace grpo::rollout

// Token sampling and the shared token log-prob definition (include/grpo/rollout/sampling.h).
#include "grpo/rollout/sampling.h"

#include <ATen/Parallel.h>

#include <array>
#include <cmath>
#include <tuple>
#include <vector>

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

at::Tensor token_entropy(const at::Tensor& logits, double temperature) {
  GRPO_CHECK(temperature > 0, "token_entropy: temperature must be > 0, got ", temperature);
  at::Tensor scaled = logits.to(at::kFloat);
  if (temperature != 1.0) scaled = scaled / temperature;
  const at::Tensor logp = at::log_softmax(scaled, -1);
  return -(logp.exp() * logp).sum(-1);
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
  at::Tensor scaled = logits.to(at::kFloat);
  if (p.temperature != 1.0) scaled = scaled / p.temperature;  // x / 1 is x: skip the pass
  at::Tensor probs = at::softmax(scaled, -1);                 // (R, V)
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

at::Tensor inverse_cdf_reference(const at::Tensor& probs, const at::Tensor& uniforms) {
  // The first token whose cumulative mass (fp64, vocabulary order) exceeds u * total.
  const at::Tensor cdf = probs.to(at::kDouble).cumsum(-1);  // (R, V)
  const at::Tensor target =
      uniforms.to(cdf.device(), at::kDouble) * cdf.narrow(-1, cdf.size(-1) - 1, 1).squeeze(-1);
  return (cdf <= target.unsqueeze(-1)).sum(-1).clamp_max(cdf.size(-1) - 1);
}

namespace {

// Probabilities summed per block of kBlock tokens: the draw first finds the block, then the token
// inside it, so a row costs one vectorisable pass plus one block instead of a sequential scan.
constexpr int64_t kBlock = 256;
constexpr int64_t kLanes = 8;

double block_sum(const float* p, int64_t n) {
  std::array<double, kLanes> acc{};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) acc[l] += static_cast<double>(p[j + l]);
  }
  double s = 0;
  for (int64_t l = 0; l < kLanes; ++l) s += acc[l];
  for (; j < n; ++j) s += static_cast<double>(p[j]);
  return s;
}

// One row: with C(b) the sum of the block sums before block b, token j of block b has cumulative
// mass C(b) + (p of block b up to j, summed in order); the draw is the first token with p > 0
// whose cumulative mass exceeds u * (sum of all block sums).
int64_t draw_row(const float* p, int64_t vocab, double u, std::vector<double>& sums) {
  const int64_t blocks = (vocab + kBlock - 1) / kBlock;
  sums.resize(blocks);
  double total = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    sums[b] = block_sum(p + b * kBlock, std::min(kBlock, vocab - b * kBlock));
    total += sums[b];
  }
  const double target = u * total;
  double before = 0;  // C(b)
  int64_t last_positive = -1;
  for (int64_t b = 0; b < blocks; ++b) {
    if (before + sums[b] > target) {
      double c = before;
      const int64_t end = std::min(vocab, (b + 1) * kBlock);
      for (int64_t j = b * kBlock; j < end; ++j) {
        if (p[j] <= 0) continue;
        c += static_cast<double>(p[j]);
        last_positive = j;
        if (c > target) return j;
      }
      // Rounding of the in-block order left the target just above: the next positive token.
    }
    before += sums[b];
  }
  for (int64_t j = vocab - 1; j > last_positive; --j) {
    if (p[j] > 0) return j;
  }
  return std::max<int64_t>(last_positive, 0);
}

}  // namespace

at::Tensor inverse_cdf(const at::Tensor& probs, const at::Tensor& uniforms) {
  GRPO_CHECK(probs.dim() == 2 && uniforms.dim() == 1 && uniforms.size(0) == probs.size(0),
             "inverse_cdf: probs (R, V) and uniforms (R), got ", probs.sizes(), " and ",
             uniforms.sizes());
  if (!probs.device().is_cpu() || probs.scalar_type() != at::kFloat) {
    return inverse_cdf_reference(probs, uniforms);
  }
  const at::Tensor p = probs.contiguous();
  const at::Tensor u = uniforms.to(at::kDouble).contiguous();
  const int64_t rows = p.size(0), vocab = p.size(1);
  at::Tensor tokens = at::empty({rows}, at::kLong);
  const float* pd = p.data_ptr<float>();
  const double* ud = u.data_ptr<double>();
  int64_t* td = tokens.data_ptr<int64_t>();
  // Rows are independent: a row's token is the same whichever thread draws it.
  at::parallel_for(0, rows, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(vocab, 1)),
                   [&](int64_t begin, int64_t end) {
                     std::vector<double> sums;
                     for (int64_t r = begin; r < end; ++r)
                       td[r] = draw_row(pd + r * vocab, vocab, ud[r], sums);
                   });
  return tokens;
}

Sampled sample_next(const at::Tensor& logits, const at::Tensor& uniforms, const SamplingParams& p) {
  GRPO_CHECK(logits.dim() == 2, "sample_next: logits must be (R, V), got ", logits.sizes());
  Sampled out;
  if (p.temperature == 0) {
    out.tokens = logits.argmax(-1);
    out.logprobs = token_logprobs(logits, out.tokens, logprob_temperature(p));
  } else {
    const at::Tensor probs = filtered_probs(logits, p);  // (R, V) fp32, unnormalised after filters
    out.tokens = inverse_cdf(probs, uniforms);
    // The filters zero tokens without renormalising, and a drawn token is never filtered: its
    // probability is softmax(logits / T) at the token, whose log is token_logprobs' value.
    out.logprobs = probs.gather(-1, out.tokens.unsqueeze(-1)).squeeze(-1).log();
  }
  if (p.record_entropy) out.entropy = token_entropy(logits, logprob_temperature(p));
  return out;
}

}  // namespace grpo::rollout

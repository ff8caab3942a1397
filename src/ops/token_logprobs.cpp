// Chunked output projection + log-softmax + gather (+ entropy) as one autograd function; see
// include/grpo/ops/token_logprobs.h.
#include "grpo/ops/token_logprobs.h"

#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>

#include "grpo/core/error.h"
#include "grpo/torch_compat.h"

namespace grpo::ops {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows per chunk: about 32M float32 logits (128 MB) at a time.
int64_t default_chunk_rows(int64_t vocab) {
  return std::max<int64_t>(1, (int64_t{32} << 20) / std::max<int64_t>(vocab, 1));
}

// A forward whose gradient will be needed keeps its probabilities (and logits, for the entropy's
// gradient) when they are at most this many values, instead of recomputing them in the backward.
constexpr int64_t kKeepValues = int64_t{1} << 22;

// The softmax runs in float32, or in float64 for float64 products (tests).
at::ScalarType softmax_dtype(at::ScalarType product) {
  return product == at::kDouble ? at::kDouble : at::kFloat;
}

// (c, V) logits / T of one chunk in the softmax dtype; h and w already in the product dtype.
at::Tensor chunk_logits(const at::Tensor& h, const at::Tensor& w, double temperature) {
  at::Tensor z = at::mm(h, w.t()).to(softmax_dtype(h.scalar_type()));
  if (temperature != 1.0) z.div_(temperature);
  return z;
}

class TokenLogprobsFunction : public torch::autograd::Function<TokenLogprobsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& hidden,
                               const at::Tensor& weight, const at::Tensor& targets,
                               double temperature, bool with_entropy, int64_t chunk_rows,
                               int64_t product_dtype, bool for_backward) {
    const auto dtype = static_cast<at::ScalarType>(product_dtype);
    const int64_t rows = hidden.size(0);
    const bool keep = for_backward && rows <= chunk_rows && rows * weight.size(0) <= kKeepValues;
    at::Tensor kept_p, kept_z;  // (rows, V) when `keep`: one chunk
    const at::Tensor h = hidden.to(dtype), w = weight.to(dtype);
    const auto f32 = hidden.options().dtype(softmax_dtype(dtype));
    at::Tensor lse = at::empty({rows}, f32), logprobs = at::empty({rows}, f32);
    at::Tensor entropy = at::empty({with_entropy ? rows : 0}, f32);
    at::Tensor top = at::empty({rows}, hidden.options().dtype(at::kBool));
    for (int64_t begin = 0; begin < rows; begin += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - begin);
      const at::Tensor z = chunk_logits(h.narrow(0, begin, n), w, temperature);  // (n, V)
      const at::Tensor m = std::get<0>(z.max(1, /*keepdim=*/true));              // (n, 1)
      const at::Tensor e = (z - m).exp_();
      const at::Tensor s = e.sum(1, /*keepdim=*/true);
      const at::Tensor chunk_lse = (m + s.log()).squeeze(1);
      if (keep) {
        kept_p = e / s;
        if (with_entropy) kept_z = z;
      }
      lse.narrow(0, begin, n).copy_(chunk_lse);
      const at::Tensor target_logit = z.gather(1, targets.narrow(0, begin, n).unsqueeze(1));
      logprobs.narrow(0, begin, n).copy_(target_logit.squeeze(1) - chunk_lse);
      top.narrow(0, begin, n).copy_(target_logit.ge(m).squeeze(1));
      if (with_entropy) {
        // H = lse - sum(p z), with p = e / s.
        entropy.narrow(0, begin, n).copy_(chunk_lse - (e.mul_(z)).sum(1) / s.squeeze(1));
      }
    }
    ctx->save_for_backward(
        {hidden, weight, targets, lse, with_entropy ? entropy : at::Tensor(), kept_p, kept_z});
    ctx->saved_data["temperature"] = temperature;
    ctx->saved_data["chunk_rows"] = chunk_rows;
    ctx->saved_data["dtype"] = product_dtype;
    ctx->mark_non_differentiable({top});
    return {logprobs, entropy, top};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3],
                     &entropy = saved[4], &kept_p = saved[5], &kept_z = saved[6];
    const double temperature = ctx->saved_data["temperature"].toDouble();
    const int64_t chunk_rows = ctx->saved_data["chunk_rows"].toInt();
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    const int64_t rows = hidden.size(0);
    // d logp_t / dz = onehot(t) - p; d H / dz = -p (z - lse + H); both through z = logits / T.
    // Row coefficients with the 1/T folded in: grad_z = onehot * a - p * (a + b (z - lse + H)).
    const at::Tensor g_lp = grads[0].defined() ? grads[0] : at::zeros_like(lse);
    const at::Tensor a = g_lp / temperature;
    const bool with_entropy = grads[1].defined() && entropy.defined();
    const at::Tensor b = with_entropy ? grads[1] / temperature : at::Tensor();
    const at::Tensor h = hidden.to(dtype), w = weight.to(dtype);
    at::Tensor grad_h = at::empty_like(hidden);
    // Accumulated over chunks in float32 (or the weight's own dtype when the product runs in it).
    at::Tensor grad_w = at::zeros_like(
        weight,
        weight.options().dtype(dtype == weight.scalar_type() ? weight.scalar_type() : at::kFloat));
    for (int64_t begin = 0; begin < rows; begin += chunk_rows) {
      const int64_t n = std::min(chunk_rows, rows - begin);
      const at::Tensor h_c = h.narrow(0, begin, n);
      const at::Tensor chunk_lse = lse.narrow(0, begin, n).unsqueeze(1);
      // (n, V) logits and probabilities: kept by the forward (one chunk), or recomputed. Not
      // written to (the kept ones are saved variables).
      const bool kept = kept_p.defined() && (kept_z.defined() || !with_entropy);
      const at::Tensor z = kept ? kept_z : chunk_logits(h_c, w, temperature);
      const at::Tensor p = kept ? kept_p : (z - chunk_lse).exp_();
      const at::Tensor a_c = a.narrow(0, begin, n).unsqueeze(1);
      at::Tensor grad_z;
      if (with_entropy) {
        const at::Tensor shift = chunk_lse - entropy.narrow(0, begin, n).unsqueeze(1);
        grad_z = (z - shift).mul_(b.narrow(0, begin, n).unsqueeze(1)).add_(a_c).mul_(p).neg_();
      } else {
        grad_z = (p * a_c).neg_();
      }
      grad_z.scatter_add_(1, targets.narrow(0, begin, n).unsqueeze(1), a_c);
      const at::Tensor gz = grad_z.to(dtype);
      grad_h.narrow(0, begin, n).copy_(at::mm(gz, w));
      if (dtype == grad_w.scalar_type()) {
        grad_w.addmm_(gz.t(), h_c);
      } else {
        grad_w.add_(at::mm(gz.t(), h_c));
      }
    }
    return {grad_h,       grad_w.to(weight.scalar_type()),
            at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor()};
  }
};

}  // namespace

TokenLogprobs token_logprobs(const at::Tensor& hidden, const at::Tensor& weight,
                             const at::Tensor& targets, double temperature, bool with_entropy,
                             int64_t chunk_rows) {
  GRPO_CHECK(temperature > 0, "token_logprobs: temperature must be > 0, got ", temperature);
  GRPO_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1),
             "token_logprobs: hidden (R, H) and weight (V, H) expected, got ", hidden.sizes(),
             " and ", weight.sizes());
  GRPO_CHECK(targets.dim() == 1 && targets.size(0) == hidden.size(0),
             "token_logprobs: targets must be (", hidden.size(0), "), got ", targets.sizes());
  const at::DeviceType device = hidden.device().type();
  const at::ScalarType dtype =
      compat::autocast_enabled(device) && at::isFloatingType(hidden.scalar_type())
          ? compat::autocast_dtype(device)
          : hidden.scalar_type();
  if (chunk_rows <= 0) chunk_rows = default_chunk_rows(weight.size(0));
  const bool for_backward =
      at::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  const auto out =
      TokenLogprobsFunction::apply(hidden, weight, targets.to(at::kLong), temperature, with_entropy,
                                   chunk_rows, static_cast<int64_t>(dtype), for_backward);
  TokenLogprobs result;
  result.logprobs = out[0];
  if (with_entropy) result.entropy = out[1];
  result.top = out[2];
  return result;
}

}  // namespace grpo::ops

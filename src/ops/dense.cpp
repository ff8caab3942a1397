// ATen reference implementations of RMSNorm, RoPE and causal GQA attention (see the headers in
// include/grpo/ops/). They follow the Hugging Face modelling code's order of operations and
// dtypes so that fp32 logits agree to rounding and bf16 ones closely.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "grpo/core/error.h"
#include "grpo/ops/attention.h"
#include "grpo/ops/rms_norm.h"
#include "grpo/ops/rope.h"
#include "grpo/torch_compat.h"

#if GRPO_KERNELS_LINKED
#include "cuda_ops.h"
#endif
#include "cpu_ops.h"

namespace grpo::ops {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps,
                    KernelPolicy policy) {
  GRPO_CHECK(x.size(-1) == weight.size(0), "rms_norm: hidden size ", x.size(-1), " but weight has ",
             weight.size(0));
  if (policy != KernelPolicy::reference && cpu::rms_norm_supported(x, weight)) {
    return cpu::rms_norm(x, weight, eps);
  }
  const at::Tensor xf = x.to(at::kFloat);
  const at::Tensor variance = xf.pow(2).mean(-1, /*keepdim=*/true);
  return weight * (xf * at::rsqrt(variance + eps)).to(x.scalar_type());
}

RopeType parse_rope_type(const std::string& name) {
  if (name == "default") return RopeType::standard;
  if (name == "linear") return RopeType::linear;
  if (name == "llama3") return RopeType::llama3;
  if (name == "yarn") return RopeType::yarn;
  GRPO_CHECK_KIND(config, false, "unsupported rope type '", name,
                  "' (supported: default, linear, llama3, yarn)");
  return RopeType::standard;
}

const char* rope_type_name(RopeType type) {
  switch (type) {
    case RopeType::standard:
      return "default";
    case RopeType::linear:
      return "linear";
    case RopeType::llama3:
      return "llama3";
    case RopeType::yarn:
      return "yarn";
  }
  return "?";
}

namespace {

// YaRN (arXiv 2309.00071): blend interpolated and extrapolated frequencies with a linear ramp
// over the dimensions whose wavelengths fall between beta_fast and beta_slow rotations.
at::Tensor yarn_inv_freq(int64_t dim, int64_t original_max, const RopeParams& p) {
  const double base = p.theta;
  const auto correction_dim = [&](double rotations) {
    return (dim * std::log(original_max / (rotations * 2 * M_PI))) / (2 * std::log(base));
  };
  double low = correction_dim(p.beta_fast);
  double high = correction_dim(p.beta_slow);
  if (p.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // avoid a zero-width ramp
  const at::Tensor pos_freqs = at::pow(base, at::arange(0, dim, 2, at::kFloat) / dim);
  const at::Tensor extrapolation = 1.0 / pos_freqs;
  const at::Tensor interpolation = 1.0 / (p.factor * pos_freqs);
  const at::Tensor ramp = at::clamp((at::arange(dim / 2, at::kFloat) - low) / (high - low), 0, 1);
  const at::Tensor extrapolation_weight = 1 - ramp;
  return interpolation * (1 - extrapolation_weight) + extrapolation * extrapolation_weight;
}

double yarn_mscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

RopeTable rope_table(int64_t head_dim, int64_t max_position, const RopeParams& p) {
  GRPO_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope: head_dim must be even, got ", head_dim);
  RopeTable table;
  const at::Tensor base_inv =
      1.0 / at::pow(p.theta, at::arange(0, head_dim, 2, at::kLong).to(at::kFloat) / head_dim);
  const int64_t original_max = p.original_max_position > 0 ? p.original_max_position : max_position;
  switch (p.type) {
    case RopeType::standard:
      table.inv_freq = base_inv;
      break;
    case RopeType::linear:
      table.inv_freq = base_inv / p.factor;
      break;
    case RopeType::llama3: {
      // Llama 3.1: keep high frequencies, divide low ones by factor, interpolate in between.
      const double low_wavelen = original_max / p.low_freq_factor;
      const double high_wavelen = original_max / p.high_freq_factor;
      const at::Tensor wavelen = 2 * M_PI / base_inv;
      at::Tensor inv = at::where(wavelen > low_wavelen, base_inv / p.factor, base_inv);
      const at::Tensor smooth =
          (original_max / wavelen - p.low_freq_factor) / (p.high_freq_factor - p.low_freq_factor);
      const at::Tensor smoothed = (1 - smooth) * inv / p.factor + smooth * inv;
      const at::Tensor medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
      table.inv_freq = at::where(medium, smoothed, inv);
      break;
    }
    case RopeType::yarn: {
      table.inv_freq = yarn_inv_freq(head_dim, original_max, p);
      if (p.attention_factor > 0) {
        table.attention_scaling = p.attention_factor;
      } else if (p.mscale != 0 && p.mscale_all_dim != 0) {
        table.attention_scaling =
            yarn_mscale(p.factor, p.mscale) / yarn_mscale(p.factor, p.mscale_all_dim);
      } else {
        table.attention_scaling = yarn_mscale(p.factor, 1.0);
      }
      break;
    }
  }
  return table;
}

std::pair<at::Tensor, at::Tensor> rope_cos_sin(const RopeTable& table, const at::Tensor& positions,
                                               at::ScalarType dtype) {
  GRPO_CHECK(positions.dim() == 2, "rope: positions must be (B, T), got ", positions.sizes());
  const at::Tensor inv = table.inv_freq.to(positions.device());
  // (B, T, 1) x (D/2) in fp32: positions up to 2^24 are exact.
  const at::Tensor freqs = positions.to(at::kFloat).unsqueeze(-1) * inv;
  const at::Tensor emb = at::cat({freqs, freqs}, -1);  // (B, T, D)
  return {(emb.cos() * table.attention_scaling).to(dtype),
          (emb.sin() * table.attention_scaling).to(dtype)};
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                      KernelPolicy policy) {
  if (policy != KernelPolicy::reference && cpu::rope_supported(x, cos, sin)) {
    return cpu::apply_rope(x, cos, sin);
  }
  const int64_t half = x.size(-1) / 2;
  const at::Tensor rotated = at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
  const at::Tensor c = cos.unsqueeze(1);  // (B, 1, T, D): broadcast over heads
  const at::Tensor s = sin.unsqueeze(1);
  return x * c + rotated * s;
}

namespace {

double lowest_finite(at::ScalarType dtype) {
  switch (dtype) {
    case at::kDouble:
      return std::numeric_limits<double>::lowest();
    case at::kHalf:
      return -65504.0;
    case at::kBFloat16:
      return -3.3895313892515355e38;
    default:
      return std::numeric_limits<float>::lowest();
  }
}

}  // namespace

bool kernels_linked() { return GRPO_KERNELS_LINKED; }

bool cuda_kernels_for(const at::Tensor& x, KernelPolicy policy) {
#if GRPO_KERNELS_LINKED
  return cuda_kernels_enabled(policy) && cuda::on_kernel_device(x);
#else
  (void)x, (void)policy;
  return false;
#endif
}

bool cpu_attention_linked() { return GRPO_CPU_ATTENTION; }

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, int num_splits) {
#if GRPO_KERNELS_LINKED
  return cuda::decode_attention(q, k, v, scale, num_splits);
#else
  (void)q, (void)k, (void)v, (void)scale, (void)num_splits;
  GRPO_CHECK(false, "decode_attention needs the CUDA kernels, which this build did not link");
  return {};
#endif
}

at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                            int64_t max_seqlen_q, int64_t max_seqlen_k, double scale) {
#if GRPO_KERNELS_LINKED
  return cuda::varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                scale);
#else
  (void)q, (void)k, (void)v, (void)cu_seqlens_q, (void)cu_seqlens_k, (void)max_seqlen_q,
      (void)max_seqlen_k, (void)scale;
  GRPO_CHECK(false, "varlen_attention needs the CUDA kernels, which this build did not link");
  return {};
#endif
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& key_mask, KernelPolicy policy) {
  GRPO_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
             "attention: q, k, v must be (B, H, T, D)");
  const int64_t batch = q.size(0), hq = q.size(1), t = q.size(2);
  const int64_t hkv = k.size(1), s = k.size(2);
  GRPO_CHECK(hkv > 0 && hq % hkv == 0, "attention: ", hq, " query heads not a multiple of ", hkv,
             " key/value heads");
  GRPO_CHECK(s >= t, "attention: ", t, " queries but only ", s, " keys");
  GRPO_CHECK(k.size(0) == batch && v.size(0) == batch && v.size(1) == hkv && v.size(2) == s &&
                 k.size(3) == q.size(3),
             "attention: q ", q.sizes(), ", k ", k.sizes(), " and v ", v.sizes(), " do not match");
  if (key_mask.defined()) {
    GRPO_CHECK(key_mask.dim() == 2 && key_mask.size(0) == batch && key_mask.size(1) == s,
               "attention: key_mask must be (", batch, ", ", s, "), got ", key_mask.sizes());
  }
#if GRPO_KERNELS_LINKED
  if (cuda_kernels_enabled(policy) && cuda::attention_supported(q, k, v, key_mask)) {
    return cuda::causal_attention(q, k, v, scale, key_mask);
  }
#endif
#if GRPO_CPU_ATTENTION
  if (policy != KernelPolicy::reference && cpu::attention_supported(q, k, v)) {
    return cpu::causal_attention(q, k, v, scale, key_mask);
  }
#endif
  (void)policy;
  const int64_t groups = hq / hkv;
  const int64_t d = q.size(3), dv = v.size(3);
  // Grouped query heads without repeating K/V: query head h reads kv head h / groups (as HF's
  // repeat_kv), so the `groups` query heads of one kv head are stacked along time,
  // (B, Hq, T, D) -> (B, Hkv, groups * T, D), and multiply that kv head's keys directly.
  const at::Tensor qg = q.reshape({batch, hkv, groups * t, d});
  // LibTorch's CPU batched product multiplies its (B * Hkv) matrices one at a time, with views
  // and a dispatch per matrix: for small ones (decode steps above all) that overhead is most of
  // the time. There, a broadcast multiply and a sum over the shared dimension do the same
  // products in two vectorised passes (their temporary holds groups * T * S * D values per
  // (batch, kv head), so this is for small matrices only). Without gradients only: the
  // backward of the broadcast form costs more than the batched product's (measured: the update
  // phase got slower). Not under autocast, where matmul would run in the autocast dtype.
  constexpr int64_t kBroadcastMaxElements = 16384;
  const bool broadcast = q.device().is_cpu() && !compat::autocast_enabled(at::kCPU) &&
                         !(at::GradMode::is_enabled() &&
                           (q.requires_grad() || k.requires_grad() || v.requires_grad())) &&
                         groups * t * s * std::max(d, dv) <= kBroadcastMaxElements;
  // In place on the fresh product (neither matmul's nor mul_'s backward needs its values).
  at::Tensor scores = broadcast ? (qg.unsqueeze(3) * k.unsqueeze(2)).sum(-1)  // (B, Hkv, gT, S)
                                : at::matmul(qg, k.transpose(-1, -2));
  scores = scores.mul_(scale).view({batch, hq, t, s});  // (B, Hq, T, S)
  const at::Tensor qpos = at::arange(s - t, s, q.options().dtype(at::kLong)).unsqueeze(1);
  const at::Tensor kpos = at::arange(0, s, q.options().dtype(at::kLong)).unsqueeze(0);
  at::Tensor allowed = (kpos <= qpos).view({1, 1, t, s});  // (1, 1, T, S)
  if (key_mask.defined()) {
    allowed = allowed.logical_and(key_mask.to(at::kBool).view({batch, 1, 1, s}));
  }
  // The dtype's lowest finite value rather than -inf: fully masked rows stay finite. The scores'
  // dtype, not q's: under autocast a float32 q gives bfloat16/float16 scores.
  const double lowest = lowest_finite(scores.scalar_type());
  scores.masked_fill_(allowed.logical_not(), lowest);
  // fp32 softmax for half types (as HF's eager attention); doubles stay double for tests.
  const at::ScalarType softmax_dtype = q.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const at::Tensor probs = at::softmax(scores, -1, softmax_dtype).to(scores.scalar_type());
  const at::Tensor pg = probs.view({batch, hkv, groups * t, s});
  return (broadcast ? (pg.unsqueeze(-1) * v.unsqueeze(2)).sum(-2)  // (B, Hkv, groups * T, Dv)
                    : at::matmul(pg, v))
      .view({batch, hq, t, dv});
}

}  // namespace grpo::ops

// CUDA paths of causal attention: tensors -> kernels::Attention*Params, the training forward and
// backward as one autograd function, and decode (one query, no gradient) with split-K.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include <tuple>
#include <utility>

#include "cuda_ops.h"
#include "grpo/kernels/attention.h"
#include "grpo/ops/attention.h"

namespace grpo::ops::cuda {
namespace {

namespace gk = grpo::kernels;

gk::DType kernel_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? gk::DType::bfloat16 : gk::DType::float16;
}

// Head dim contiguous and every row 16-byte aligned (the kernels load 8 elements at a time).
bool rows_aligned(const at::Tensor& t) {
  if (t.stride(-1) != 1) return false;
  if (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 != 0) return false;
  for (int64_t d = 0; d + 1 < t.dim(); ++d) {
    if (t.size(d) > 1 && t.stride(d) % 8 != 0) return false;
  }
  return true;
}

// (B) int32 first and one-past-last real key of each row of a key mask (B, S) whose real keys
// form one contiguous run: left padding, right padding (the training batches) or both; a row
// without a real key gets (S, S). Undefined tensors when some row has a padded key between two
// real ones (the caller then takes the reference). Costs one device synchronisation.
std::pair<at::Tensor, at::Tensor> key_bounds_of(const at::Tensor& key_mask,
                                                const at::Device& device) {
  const at::Tensor mask = key_mask.to(device, at::kBool);
  const int64_t s = mask.size(1);
  const at::Tensor pos = at::arange(s, mask.options().dtype(at::kLong)).unsqueeze(0);  // (1, S)
  const at::Tensor count = mask.sum(1, /*keepdim=*/true);                              // (B, 1)
  const at::Tensor first = at::where(mask, pos, s).amin(1, /*keepdim=*/true);          // (B, 1)
  const at::Tensor end = first + count;
  if (!at::equal(pos.ge(first).logical_and(pos.lt(end)), mask)) return {};
  return {first.squeeze(1).to(at::kInt), end.squeeze(1).to(at::kInt)};
}

struct Layout {
  bool packed = false;
  at::Tensor cu_q, cu_k;  // packed: (B+1) int32
  int64_t batch = 0, max_q = 0, max_k = 0;
};

// Views a tensor as (B, H, L, D) strides whatever the layout: packed (total, H, D) tensors get
// batch stride 0 and their row stride from dim 0.
void strides_of(const at::Tensor& t, bool packed, int64_t& bs, int64_t& rs, int64_t& hs) {
  if (packed) {
    bs = 0;
    rs = t.stride(0);
    hs = t.stride(1);
  } else {
    bs = t.stride(0);
    hs = t.stride(1);
    rs = t.stride(2);
  }
}

gk::AttentionFwdParams fwd_params(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                  const at::Tensor& o, const at::Tensor& lse,
                                  const at::Tensor& key_start, const at::Tensor& key_end,
                                  const Layout& lay, double scale) {
  gk::AttentionFwdParams p;
  p.dtype = kernel_dtype(q);
  p.batch = static_cast<int>(lay.batch);
  p.heads_q = static_cast<int>(q.size(1));
  p.heads_kv = static_cast<int>(k.size(1));
  p.head_dim = static_cast<int>(q.size(-1));
  p.q_layout.seqlen = static_cast<int>(lay.max_q);
  p.k_layout.seqlen = static_cast<int>(lay.max_k);
  if (lay.packed) {
    p.q_layout.cu_seqlens = lay.cu_q.data_ptr<int32_t>();
    p.k_layout.cu_seqlens = lay.cu_k.data_ptr<int32_t>();
  }
  p.scale = static_cast<float>(scale);
  p.key_start = key_start.defined() ? key_start.data_ptr<int32_t>() : nullptr;
  p.key_end = key_end.defined() ? key_end.data_ptr<int32_t>() : nullptr;
  p.q = q.data_ptr();
  strides_of(q, lay.packed, p.q_batch_stride, p.q_row_stride, p.q_head_stride);
  p.k = k.data_ptr();
  strides_of(k, lay.packed, p.k_batch_stride, p.k_row_stride, p.k_head_stride);
  p.v = v.data_ptr();
  strides_of(v, lay.packed, p.v_batch_stride, p.v_row_stride, p.v_head_stride);
  p.o = o.data_ptr();
  strides_of(o, lay.packed, p.o_batch_stride, p.o_row_stride, p.o_head_stride);
  p.lse = lse.data_ptr<float>();
  // lse: padded (B, Hq, Lq); packed (Hq, total_q).
  p.lse_batch_stride = lay.packed ? 0 : lse.stride(0);
  p.lse_head_stride = lay.packed ? lse.stride(0) : lse.stride(1);
  return p;
}

// An output shaped like `like` (B, H, L, D) but laid out (B, L, H, D) in memory, as the model
// reads it next (transpose + reshape without a copy); packed tensors are plain contiguous.
at::Tensor empty_rows_like(const at::Tensor& like, bool packed) {
  if (packed) return at::empty(like.sizes(), like.options());
  return at::empty({like.size(0), like.size(2), like.size(1), like.size(3)}, like.options())
      .transpose(1, 2);
}

std::pair<at::Tensor, at::Tensor> forward_impl(const at::Tensor& q, const at::Tensor& k,
                                               const at::Tensor& v, const at::Tensor& key_start,
                                               const at::Tensor& key_end, const Layout& lay,
                                               double scale) {
  const at::Tensor o = empty_rows_like(q, lay.packed);
  const at::Tensor lse =
      lay.packed ? at::empty({q.size(1), q.size(0)}, q.options().dtype(at::kFloat))
                 : at::empty({q.size(0), q.size(1), q.size(2)}, q.options().dtype(at::kFloat));
  const gk::AttentionFwdParams p = fwd_params(q, k, v, o, lse, key_start, key_end, lay, scale);
  GRPO_CUDA_CHECK(gk::attention_forward(p, at::cuda::getCurrentCUDAStream()));
  return {o, lse};
}

class AttentionFunction : public torch::autograd::Function<AttentionFunction> {
 public:
  // The optional int32 tensors (key bounds, cu_seqlens) come as optionals: LibTorch 1.13's
  // custom functions reject an undefined tensor argument (2.x accepts it).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q,
                            const at::Tensor& k, const at::Tensor& v,
                            const c10::optional<at::Tensor>& key_start_opt,
                            const c10::optional<at::Tensor>& key_end_opt,
                            const c10::optional<at::Tensor>& cu_q,
                            const c10::optional<at::Tensor>& cu_k, int64_t max_q, int64_t max_k,
                            int64_t batch, double scale) {
    const at::Tensor key_start = key_start_opt.value_or(at::Tensor());
    const at::Tensor key_end = key_end_opt.value_or(at::Tensor());
    Layout lay;
    lay.cu_q = cu_q.value_or(at::Tensor());
    lay.cu_k = cu_k.value_or(at::Tensor());
    lay.packed = lay.cu_q.defined();
    lay.batch = batch;
    lay.max_q = max_q;
    lay.max_k = max_k;
    auto [o, lse] = forward_impl(q, k, v, key_start, key_end, lay, scale);
    ctx->save_for_backward({q, k, v, o, lse, key_start, key_end, lay.cu_q, lay.cu_k});
    ctx->saved_data["max_q"] = max_q;
    ctx->saved_data["max_k"] = max_k;
    ctx->saved_data["batch"] = batch;
    ctx->saved_data["scale"] = scale;
    return o;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q = saved[0], &k = saved[1], &v = saved[2], &o = saved[3], &lse = saved[4],
                     &key_start = saved[5], &key_end = saved[6];
    Layout lay;
    lay.cu_q = saved[7];
    lay.cu_k = saved[8];
    lay.packed = lay.cu_q.defined();
    lay.max_q = ctx->saved_data["max_q"].toInt();
    lay.max_k = ctx->saved_data["max_k"].toInt();
    lay.batch = ctx->saved_data["batch"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    at::Tensor dout = grads[0];
    if (!rows_aligned(dout)) dout = dout.contiguous();
    const int64_t rows = lay.packed ? q.size(0) : q.size(0) * q.size(2);
    const at::Tensor dq = empty_rows_like(q, lay.packed);
    at::Tensor dk = empty_rows_like(k, lay.packed);
    at::Tensor dv = empty_rows_like(v, lay.packed);
    if (rows == 0 || lay.max_q == 0) {  // no queries: the kernel returns without writing dK, dV
      dk.zero_();
      dv.zero_();
      return {dq.zero_(), dk, dv, {}, {}, {}, {}, {}, {}, {}, {}};
    }
    const at::Tensor delta = at::empty_like(lse);
    const at::Tensor dq_accum =
        at::empty({rows, q.size(1), q.size(-1)}, q.options().dtype(at::kFloat));
    gk::AttentionBwdParams p;
    p.fwd = fwd_params(q, k, v, o, lse, key_start, key_end, lay, scale);
    p.dout = dout.data_ptr();
    strides_of(dout, lay.packed, p.do_batch_stride, p.do_row_stride, p.do_head_stride);
    p.dq = dq.data_ptr();
    strides_of(dq, lay.packed, p.dq_batch_stride, p.dq_row_stride, p.dq_head_stride);
    p.dk = dk.data_ptr();
    strides_of(dk, lay.packed, p.dk_batch_stride, p.dk_row_stride, p.dk_head_stride);
    p.dv = dv.data_ptr();
    strides_of(dv, lay.packed, p.dv_batch_stride, p.dv_row_stride, p.dv_head_stride);
    p.delta = delta.data_ptr<float>();
    p.dq_accum = dq_accum.data_ptr<float>();
    p.dq_accum_rows = rows;
    GRPO_CUDA_CHECK(gk::attention_backward(p, at::cuda::getCurrentCUDAStream()));
    return {dq, dk, dv, {}, {}, {}, {}, {}, {}, {}, {}};
  }
};

// num_splits 0: kernels::decode_num_splits' choice.
at::Tensor decode(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& key_start, const at::Tensor& key_end, double scale,
                  int num_splits = 0) {
  const int64_t b = q.size(0), hq = q.size(1), hkv = k.size(1), s = k.size(2), d = q.size(3);
  gk::DecodeParams p;
  p.dtype = kernel_dtype(q);
  p.batch = static_cast<int>(b);
  p.heads_q = static_cast<int>(hq);
  p.heads_kv = static_cast<int>(hkv);
  p.head_dim = static_cast<int>(d);
  p.seqlen_k = static_cast<int>(s);
  p.key_start = key_start.defined() ? key_start.data_ptr<int32_t>() : nullptr;
  p.key_end = key_end.defined() ? key_end.data_ptr<int32_t>() : nullptr;
  p.scale = static_cast<float>(scale);
  p.q = q.data_ptr();
  p.q_batch_stride = q.stride(0);
  p.q_head_stride = q.stride(1);
  p.k = k.data_ptr();
  p.k_batch_stride = k.stride(0);
  p.k_head_stride = k.stride(1);
  p.k_row_stride = k.stride(2);
  p.v = v.data_ptr();
  p.v_batch_stride = v.stride(0);
  p.v_head_stride = v.stride(1);
  p.v_row_stride = v.stride(2);
  const at::Tensor o = at::empty({b, hq, 1, d}, q.options());
  p.o = o.data_ptr();
  p.o_batch_stride = o.stride(0);
  p.o_head_stride = o.stride(1);
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  p.num_splits =
      num_splits > 0 ? num_splits : gk::decode_num_splits(p.batch, p.heads_kv, p.seqlen_k, sms);
  const at::Tensor o_accum = at::empty({p.num_splits, b, hq, d}, q.options().dtype(at::kFloat));
  const at::Tensor lse_accum = at::empty({p.num_splits, b, hq}, q.options().dtype(at::kFloat));
  p.o_accum = o_accum.data_ptr<float>();
  p.lse_accum = lse_accum.data_ptr<float>();
  GRPO_CUDA_CHECK(gk::decode_attention(p, at::cuda::getCurrentCUDAStream()));
  return o;
}

bool needs_grad(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return at::GradMode::is_enabled() &&
         (q.requires_grad() || k.requires_grad() || v.requires_grad());
}

}  // namespace

bool attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& key_mask) {
  if (!on_kernel_device(q) || q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
  const auto dt = q.scalar_type();
  if ((dt != at::kBFloat16 && dt != at::kHalf) || k.scalar_type() != dt || v.scalar_type() != dt) {
    return false;
  }
  if (!gk::attention_head_dim_supported(static_cast<int>(q.size(3))) || k.size(3) != q.size(3) ||
      v.size(3) != q.size(3) || k.size(1) == 0 || q.size(1) % k.size(1) != 0) {
    return false;
  }
  if (q.size(2) == 1 && !needs_grad(q, k, v) && q.size(1) / k.size(1) > gk::kDecodeMaxGroup) {
    return false;
  }
  if (key_mask.defined() &&
      (key_mask.dim() != 2 || key_mask.size(0) != q.size(0) || key_mask.size(1) != k.size(2))) {
    return false;
  }
  return rows_aligned(q) && rows_aligned(k) && rows_aligned(v);
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& key_mask) {
  const c10::cuda::CUDAGuard guard(q.device());
  at::Tensor key_start, key_end;
  if (key_mask.defined()) {
    std::tie(key_start, key_end) = key_bounds_of(key_mask, q.device());
    // A mask with a hole (a padded key between real ones): the kernels cannot express it.
    if (!key_start.defined()) {
      return ops::causal_attention(q, k, v, scale, key_mask, KernelPolicy::reference);
    }
  }
  if (q.size(2) == 1 && !needs_grad(q, k, v)) return decode(q, k, v, key_start, key_end, scale);
  const at::Tensor o =
      AttentionFunction::apply(q, k, v, present(key_start), present(key_end), c10::nullopt,
                               c10::nullopt, q.size(2), k.size(2), q.size(0), scale);
  return o;
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, int num_splits) {
  GRPO_CHECK(attention_supported(q, k, v, {}) && q.size(2) == 1 && !needs_grad(q, k, v),
             "decode_attention: want one query per sequence without gradients, as the decode "
             "kernel takes (bf16/fp16 CUDA tensors, head dim 64 or 128), got q ",
             q.sizes(), " ", q.scalar_type(), " on ", q.device());
  GRPO_CHECK(num_splits >= 0, "decode_attention: num_splits ", num_splits, " < 0");
  const c10::cuda::CUDAGuard guard(q.device());
  return decode(q, k, v, {}, {}, scale, num_splits);
}

at::Tensor varlen_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& cu_seqlens_q, const at::Tensor& cu_seqlens_k,
                            int64_t max_seqlen_q, int64_t max_seqlen_k, double scale) {
  GRPO_CHECK(on_kernel_device(q) && q.dim() == 3 && k.dim() == 3 && v.dim() == 3,
             "varlen_attention: q, k, v must be (total, H, D) CUDA tensors");
  GRPO_CHECK(q.scalar_type() == at::kBFloat16 || q.scalar_type() == at::kHalf,
             "varlen_attention: bfloat16 or float16 only, got ", q.scalar_type());
  GRPO_CHECK(gk::attention_head_dim_supported(static_cast<int>(q.size(2))),
             "varlen_attention: head dim ", q.size(2), " (compiled: 64, 128)");
  GRPO_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() &&
                 k.device() == q.device() && v.device() == q.device(),
             "varlen_attention: q, k, v must share dtype and device");
  GRPO_CHECK(k.size(2) == q.size(2) && v.size(2) == q.size(2) && k.size(1) > 0 &&
                 v.size(1) == k.size(1) && q.size(1) % k.size(1) == 0 && v.size(0) == k.size(0),
             "varlen_attention: q (", q.sizes(), "), k (", k.sizes(), "), v (", v.sizes(),
             ") need equal head dims and query heads a multiple of the key/value heads");
  GRPO_CHECK(cu_seqlens_q.scalar_type() == at::kInt && cu_seqlens_k.scalar_type() == at::kInt &&
                 cu_seqlens_q.numel() == cu_seqlens_k.numel() && cu_seqlens_q.numel() >= 1,
             "varlen_attention: cu_seqlens must be (B+1) int32 of equal length");
  GRPO_CHECK(cu_seqlens_q.device() == q.device() && cu_seqlens_k.device() == q.device(),
             "varlen_attention: cu_seqlens must be on q's device (", q.device(), ")");
  const c10::cuda::CUDAGuard guard(q.device());
  const at::Tensor qc = rows_aligned(q) ? q : q.contiguous();
  const at::Tensor kc = rows_aligned(k) ? k : k.contiguous();
  const at::Tensor vc = rows_aligned(v) ? v : v.contiguous();
  return AttentionFunction::apply(qc, kc, vc, c10::nullopt, c10::nullopt,
                                  present(cu_seqlens_q.contiguous()),
                                  present(cu_seqlens_k.contiguous()), max_seqlen_q, max_seqlen_k,
                                  cu_seqlens_q.numel() - 1, scale);
}

}  // namespace grpo::ops::cuda

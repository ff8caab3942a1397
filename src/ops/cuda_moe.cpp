// CUDA paths of MoE routing: gating, dispatch, permute and combine as kernels (gating, permute
// and combine as autograd functions), and the expert GEMMs as one grouped cuBLAS call.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/torch.h>

#include "cuda_ops.h"
#include "grpo/kernels/moe.h"

namespace grpo::ops::cuda {
namespace {

namespace gk = grpo::kernels;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

gk::DType kernel_dtype(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 ? gk::DType::bfloat16 : gk::DType::float16;
}

bool half_type(const at::Tensor& t) {
  return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf;
}

cudaStream_t stream() { return at::cuda::getCurrentCUDAStream(); }

// Gating: weights and scores differentiable in the logits; expert ids (int32) saved.
class GateFunction : public torch::autograd::Function<GateFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& logits,
                               const c10::optional<at::Tensor>& bias_opt, int64_t top_k,
                               bool sigmoid, bool renormalize, double scaling, int64_t n_group,
                               int64_t topk_group) {
    const at::Tensor lf = logits.to(at::kFloat).contiguous();
    const int64_t n = lf.size(0), e = lf.size(1);
    const at::Tensor scores = at::empty({n, e}, lf.options());
    const at::Tensor weights = at::empty({n, top_k}, lf.options());
    const at::Tensor ids = at::empty({n, top_k}, lf.options().dtype(at::kInt));
    const at::Tensor bias = bias_opt.value_or(at::Tensor());  // optional: see present()
    const at::Tensor bf =
        bias.defined() ? bias.to(lf.device(), at::kFloat).contiguous() : at::Tensor();
    gk::GateParams p;
    p.tokens = static_cast<int>(n);
    p.experts = static_cast<int>(e);
    p.top_k = static_cast<int>(top_k);
    p.sigmoid = sigmoid;
    p.renormalize = renormalize;
    p.routed_scaling = static_cast<float>(scaling);
    p.n_group = static_cast<int>(n_group);
    p.topk_group = static_cast<int>(topk_group);
    p.logits = lf.data_ptr<float>();
    p.bias = bf.defined() ? bf.data_ptr<float>() : nullptr;
    p.scores = scores.data_ptr<float>();
    p.weights = weights.data_ptr<float>();
    p.expert_ids = ids.data_ptr<int32_t>();
    GRPO_CUDA_CHECK(gk::moe_gate_forward(p, stream()));
    ctx->save_for_backward({scores, ids});
    ctx->saved_data["sigmoid"] = sigmoid;
    ctx->saved_data["renormalize"] = renormalize;
    ctx->saved_data["scaling"] = scaling;
    ctx->saved_data["dtype"] = static_cast<int64_t>(logits.scalar_type());
    ctx->mark_non_differentiable({ids});
    return {weights, scores, ids};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& scores = saved[0];
    const at::Tensor& ids = saved[1];
    const at::Tensor dw = grads[0].defined()
                              ? grads[0].to(at::kFloat).contiguous()
                              : at::zeros({ids.size(0), ids.size(1)}, scores.options());
    const at::Tensor ds = grads[1].defined() ? grads[1].to(at::kFloat).contiguous() : at::Tensor();
    const at::Tensor dlogits = at::empty_like(scores);
    gk::GateBwdParams p;
    p.tokens = static_cast<int>(scores.size(0));
    p.experts = static_cast<int>(scores.size(1));
    p.top_k = static_cast<int>(ids.size(1));
    p.sigmoid = ctx->saved_data["sigmoid"].toBool();
    p.renormalize = ctx->saved_data["renormalize"].toBool();
    p.routed_scaling = static_cast<float>(ctx->saved_data["scaling"].toDouble());
    p.scores = scores.data_ptr<float>();
    p.expert_ids = ids.data_ptr<int32_t>();
    p.dweights = dw.data_ptr<float>();
    p.dscores = ds.defined() ? ds.data_ptr<float>() : nullptr;
    p.dlogits = dlogits.data_ptr<float>();
    GRPO_CUDA_CHECK(gk::moe_gate_backward(p, stream()));
    const auto dtype = static_cast<at::ScalarType>(ctx->saved_data["dtype"].toInt());
    return {dlogits.to(dtype), {}, {}, {}, {}, {}, {}, {}};
  }
};

gk::PermuteRowsParams rows_params(const at::Tensor& in, const at::Tensor& out, const Dispatch& d,
                                  int64_t tokens, int64_t k) {
  gk::PermuteRowsParams p;
  p.dtype = kernel_dtype(in);
  p.tokens = static_cast<int>(tokens);
  p.top_k = static_cast<int>(k);
  p.hidden = static_cast<int>(in.size(1));
  p.token_index = d.token_index.data_ptr<int64_t>();
  p.position = d.position.data_ptr<int32_t>();
  p.in = in.data_ptr();
  p.out = out.data_ptr();
  return p;
}

class PermuteFunction : public torch::autograd::Function<PermuteFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& token_index, const at::Tensor& position) {
    const int64_t rows = token_index.numel(), tokens = x.size(0);
    const int64_t k = tokens > 0 ? rows / tokens : 1;
    const at::Tensor xc = x.contiguous();
    const at::Tensor out = at::empty({rows, x.size(1)}, x.options());
    Dispatch d;
    d.token_index = token_index;
    d.position = position;
    GRPO_CUDA_CHECK(gk::moe_permute_rows(rows_params(xc, out, d, tokens, k), stream()));
    ctx->save_for_backward({token_index, position});
    ctx->saved_data["tokens"] = tokens;
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const int64_t tokens = ctx->saved_data["tokens"].toInt();
    const at::Tensor g = grads[0].contiguous();
    const int64_t k = tokens > 0 ? g.size(0) / tokens : 1;
    const at::Tensor dx = at::empty({tokens, g.size(1)}, g.options());
    Dispatch d;
    d.token_index = saved[0];
    d.position = saved[1];
    GRPO_CUDA_CHECK(gk::moe_permute_rows_backward(rows_params(g, dx, d, tokens, k), stream()));
    return {dx, {}, {}};
  }
};

gk::CombineParams combine_params(const at::Tensor& y, const at::Tensor& w,
                                 const at::Tensor& position, int64_t tokens) {
  gk::CombineParams p;
  p.dtype = kernel_dtype(y);
  p.tokens = static_cast<int>(tokens);
  p.top_k = static_cast<int>(w.size(1));
  p.hidden = static_cast<int>(y.size(1));
  p.position = position.data_ptr<int32_t>();
  p.weights = w.data_ptr<float>();
  p.y = y.data_ptr();
  return p;
}

class CombineFunction : public torch::autograd::Function<CombineFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& y, const at::Tensor& weights,
                            const at::Tensor& position, int64_t tokens) {
    const at::Tensor yc = y.contiguous();
    const at::Tensor wf = weights.to(at::kFloat).contiguous();
    const at::Tensor out = at::empty({tokens, y.size(1)}, y.options());
    gk::CombineParams p = combine_params(yc, wf, position, tokens);
    p.out = out.data_ptr();
    GRPO_CUDA_CHECK(gk::moe_combine(p, stream()));
    ctx->save_for_backward({yc, wf, position});
    ctx->saved_data["wdtype"] = static_cast<int64_t>(weights.scalar_type());
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &y = saved[0], &w = saved[1], &position = saved[2];
    const at::Tensor dout = grads[0].contiguous();
    const at::Tensor dy = at::empty_like(y);
    const at::Tensor dw = at::empty_like(w);
    gk::CombineParams p = combine_params(y, w, position, dout.size(0));
    p.dout = dout.data_ptr();
    p.dy = dy.data_ptr();
    p.dweights = dw.data_ptr<float>();
    GRPO_CUDA_CHECK(gk::moe_combine_backward(p, stream()));
    const auto wdtype = static_cast<at::ScalarType>(ctx->saved_data["wdtype"].toInt());
    return {dy, dw.to(wdtype), {}, {}};
  }
};

// C_e = op(A_e) op(B_e) for every expert with rows; see kernels::GroupedGemmParams.
void run_grouped(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b,
                 const std::vector<at::Tensor>& c, bool trans_a, bool trans_b,
                 const std::vector<int64_t>& m, const std::vector<int64_t>& n,
                 const std::vector<int64_t>& k) {
  const int groups = static_cast<int>(a.size());
  std::vector<const void*> pa(groups), pb(groups);
  std::vector<void*> pc(groups);
  std::vector<int64_t> lda(groups), ldb(groups), ldc(groups);
  for (int g = 0; g < groups; ++g) {
    pa[g] = a[g].data_ptr();
    pb[g] = b[g].data_ptr();
    pc[g] = c[g].data_ptr();
    lda[g] = std::max<int64_t>(a[g].stride(0), 1);
    ldb[g] = std::max<int64_t>(b[g].stride(0), 1);
    ldc[g] = std::max<int64_t>(c[g].stride(0), 1);
  }
  const at::Tensor workspace =
      at::empty({3 * std::max(groups, 1)}, a.front().options().dtype(at::kLong));
  gk::GroupedGemmParams p;
  p.dtype = kernel_dtype(a.front());
  p.groups = groups;
  p.trans_a = trans_a;
  p.trans_b = trans_b;
  p.m = m.data();
  p.n = n.data();
  p.k = k.data();
  p.a = pa.data();
  p.b = pb.data();
  p.c = pc.data();
  p.lda = lda.data();
  p.ldb = ldb.data();
  p.ldc = ldc.data();
  p.ptr_workspace = reinterpret_cast<void**>(workspace.data_ptr<int64_t>());
  const cublasStatus_t st = gk::grouped_gemm(at::cuda::getCurrentCUDABlasHandle(), p, stream());
  GRPO_CHECK(st == CUBLAS_STATUS_SUCCESS, "grouped expert GEMM: cuBLAS status ",
             static_cast<int>(st));
}

class GroupedLinearFunction : public torch::autograd::Function<GroupedLinearFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, at::TensorList weights,
                            std::vector<int64_t> offsets) {
    const at::Tensor xc = x.contiguous();
    const int64_t out_dim = weights[0].size(0);
    const at::Tensor y = at::empty({x.size(0), out_dim}, x.options());
    std::vector<at::Tensor> a, b, c;
    std::vector<int64_t> m, n, k;
    for (size_t e = 0; e < weights.size(); ++e) {
      const int64_t rows = offsets[e + 1] - offsets[e];
      a.push_back(xc.narrow(0, offsets[e], rows));
      b.push_back(weights[e].contiguous());
      c.push_back(y.narrow(0, offsets[e], rows));
      m.push_back(rows);
      n.push_back(out_dim);
      k.push_back(x.size(1));
    }
    run_grouped(a, b, c, false, true, m, n, k);
    std::vector<at::Tensor> to_save{xc};
    for (const at::Tensor& w : b) to_save.push_back(w);
    ctx->save_for_backward(to_save);
    ctx->saved_data["offsets"] = offsets;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const std::vector<int64_t> offsets = ctx->saved_data["offsets"].toIntVector();
    const at::Tensor dy = grads[0].contiguous();
    const size_t experts = saved.size() - 1;
    const int64_t in_dim = x.size(1), out_dim = dy.size(1);
    const at::Tensor dx = at::zeros_like(x);
    std::vector<at::Tensor> dws;
    std::vector<at::Tensor> a1, b1, c1, a2, b2, c2;
    std::vector<int64_t> m1, n1, k1, m2, n2, k2;
    for (size_t e = 0; e < experts; ++e) {
      const int64_t rows = offsets[e + 1] - offsets[e];
      const at::Tensor& w = saved[e + 1];
      dws.push_back(rows > 0 ? at::empty_like(w) : at::zeros_like(w));
      const at::Tensor dye = dy.narrow(0, offsets[e], rows);
      // dX_e (rows, in) = dY_e (rows, out) W_e (out, in)
      a1.push_back(dye);
      b1.push_back(w);
      c1.push_back(dx.narrow(0, offsets[e], rows));
      m1.push_back(rows);
      n1.push_back(in_dim);
      k1.push_back(out_dim);
      // dW_e (out, in) = dY_e^T (out, rows) X_e (rows, in); an empty expert has m = out but
      // k = 0, which run_grouped would still call: skipped by giving it m = 0.
      a2.push_back(dye);
      b2.push_back(x.narrow(0, offsets[e], rows));
      c2.push_back(dws.back());
      m2.push_back(rows > 0 ? out_dim : 0);
      n2.push_back(in_dim);
      k2.push_back(rows);
    }
    run_grouped(a1, b1, c1, false, false, m1, n1, k1);
    run_grouped(a2, b2, c2, true, false, m2, n2, k2);
    variable_list out{dx};
    for (at::Tensor& dw : dws) out.push_back(dw);
    out.push_back({});
    return out;
  }
};

}  // namespace

bool route_supported(const at::Tensor& logits, const RouterParams& params) {
  // An invalid group limit (topk_group outside [1, n_group], experts not splitting into n_group)
  // goes to the reference, which names it; the kernel would silently keep no group or all.
  const bool groups_ok = params.n_group <= 1 || (params.n_group <= 32 && params.topk_group >= 1 &&
                                                 params.topk_group <= params.n_group &&
                                                 logits.size(-1) % params.n_group == 0);
  return on_kernel_device(logits) && logits.dim() == 2 && logits.size(1) <= gk::kGateMaxExperts &&
         params.top_k >= 1 && params.top_k <= gk::kGateMaxTopK && params.top_k <= logits.size(1) &&
         groups_ok;
}

Routing route(const at::Tensor& logits, const RouterParams& params,
              const at::Tensor& correction_bias) {
  const c10::cuda::CUDAGuard guard(logits.device());
  const bool grouped = params.n_group > 1;
  GRPO_CHECK(!correction_bias.defined() || correction_bias.numel() == logits.size(1),
             "route: correction bias has ", correction_bias.numel(), " entries for ",
             logits.size(1), " experts");
  if (grouped) {
    GRPO_CHECK(logits.size(1) % params.n_group == 0, "route: ", logits.size(1),
               " experts do not split into ", params.n_group, " groups");
  }
  const variable_list out = GateFunction::apply(
      logits, present(correction_bias), params.top_k, params.score == RouterScore::sigmoid,
      params.renormalize, params.routed_scaling_factor, grouped ? params.n_group : 1,
      grouped ? params.topk_group : 1);
  Routing r;
  r.weights = out[0];
  r.scores = out[1];
  r.experts = out[2].to(at::kLong);
  return r;
}

bool dispatch_supported(const at::Tensor& experts, int64_t num_experts) {
  return on_kernel_device(experts) && experts.dim() == 2 && num_experts >= 1 &&
         num_experts <= 4096 && experts.numel() < (int64_t{1} << 31);
}

Dispatch dispatch(const at::Tensor& experts, int64_t num_experts) {
  const c10::cuda::CUDAGuard guard(experts.device());
  const int64_t tokens = experts.size(0), k = experts.size(1), total = tokens * k;
  const at::Tensor ids = experts.to(at::kInt).contiguous();
  const auto opts = experts.options();
  const int64_t chunks = (total + gk::kPermuteChunk - 1) / gk::kPermuteChunk;
  const at::Tensor chunk_counts =
      at::empty({std::max<int64_t>(chunks, 1), num_experts}, opts.dtype(at::kInt));
  Dispatch d;
  d.counts = at::empty({num_experts}, opts.dtype(at::kLong));
  const at::Tensor offsets = at::empty({num_experts + 1}, opts.dtype(at::kLong));
  d.order = at::empty({total}, opts.dtype(at::kLong));
  d.token_index = at::empty({total}, opts.dtype(at::kLong));
  d.position = at::empty({total}, opts.dtype(at::kInt));
  gk::PermuteIndexParams p;
  p.tokens = static_cast<int>(tokens);
  p.top_k = static_cast<int>(k);
  p.experts = static_cast<int>(num_experts);
  p.expert_ids = ids.data_ptr<int32_t>();
  p.chunk_counts = chunk_counts.data_ptr<int32_t>();
  p.counts = d.counts.data_ptr<int64_t>();
  p.offsets = offsets.data_ptr<int64_t>();
  p.order = d.order.data_ptr<int64_t>();
  p.token_index = d.token_index.data_ptr<int64_t>();
  p.position = d.position.data_ptr<int32_t>();
  GRPO_CUDA_CHECK(gk::moe_permute_index(p, stream()));
  d.offsets = offsets.to(at::kCPU);
  return d;
}

bool rows_supported(const at::Tensor& x, const Dispatch& d) {
  return on_kernel_device(x) && x.dim() == 2 && half_type(x) && d.position.defined() &&
         d.token_index.defined();
}

at::Tensor permute(const at::Tensor& x, const Dispatch& d) {
  // The kernels index rows by token_index / position without bounds checks.
  GRPO_CHECK(d.position.numel() == d.token_index.numel() &&
                 (x.size(0) == 0 ? d.position.numel() == 0 : d.position.numel() % x.size(0) == 0),
             "permute: ", x.size(0), " tokens but a dispatch of ", d.position.numel(),
             " assignments");
  const c10::cuda::CUDAGuard guard(x.device());
  return PermuteFunction::apply(x, d.token_index, d.position);
}

at::Tensor combine(const at::Tensor& y, const at::Tensor& weights, const Dispatch& d,
                   int64_t num_tokens) {
  GRPO_CHECK(weights.dim() == 2 && weights.size(0) == num_tokens &&
                 weights.numel() == d.position.numel() && y.size(0) == d.position.numel(),
             "combine: weights ", weights.sizes(), ", ", y.size(0), " expert rows and ",
             d.position.numel(), " dispatched assignments for ", num_tokens,
             " tokens do not match");
  const c10::cuda::CUDAGuard guard(y.device());
  return CombineFunction::apply(y, weights, d.position, num_tokens);
}

bool grouped_linear_supported(const at::Tensor& x, at::TensorList weights) {
  if (!on_kernel_device(x) || x.dim() != 2 || !half_type(x) || weights.empty()) return false;
  for (const at::Tensor& w : weights) {
    if (!on_kernel_device(w) || w.scalar_type() != x.scalar_type() || w.dim() != 2 ||
        w.size(1) != x.size(1) || w.size(0) != weights[0].size(0)) {
      return false;
    }
  }
  return true;
}

at::Tensor grouped_linear(const at::Tensor& x, const std::vector<int64_t>& offsets,
                          at::TensorList weights) {
  const c10::cuda::CUDAGuard guard(x.device());
  return GroupedLinearFunction::apply(x, weights, offsets);
}

}  // namespace grpo::ops::cuda

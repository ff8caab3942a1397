// The mixture-of-experts block: router -> ops::route/dispatch -> one SwiGLU MLP per expert over
// its contiguous rows -> ops::combine, plus the optional shared expert (Qwen2-MoE, with its
// sigmoid gate) and the router losses and statistics.
#include <torch/torch.h>

#include "grpo/core/error.h"
#include "grpo/model/modules.h"
#include "grpo/ops/kernels.h"
#include "grpo/ops/moe.h"

namespace grpo::model {

RouterImpl::RouterImpl(int64_t num_experts, int64_t hidden, bool with_bias) {
  weight = register_parameter("weight", torch::zeros({num_experts, hidden}));
  if (with_bias) {
    correction_bias = register_parameter("e_score_correction_bias", torch::zeros({num_experts}),
                                         /*requires_grad=*/false);
  }
}

MoeBlockImpl::MoeBlockImpl(const ModelArch& a) : router_(a.router), num_experts_(a.num_experts) {
  router_.kernels = a.kernels;
  gate_ = register_module("gate", Router(a.num_experts, a.hidden_size, a.router_correction_bias));
  experts_ = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < a.num_experts; ++e) {
    experts_->push_back(Mlp(a.hidden_size, a.moe_intermediate_size, false, a.expert_gate,
                            a.expert_up, a.expert_down));
  }
  if (a.shared_expert_intermediate_size > 0) {
    shared_expert_ = register_module("shared_expert",
                                     Mlp(a.hidden_size, a.shared_expert_intermediate_size, false));
    if (a.shared_expert_gate) {
      shared_expert_gate_ = register_module("shared_expert_gate", Linear(a.hidden_size, 1, false));
    }
  }
}

// The experts' SwiGLU over their rows (N*k, H) in dispatch order. On a GPU with the kernels on,
// each projection of all experts is one grouped GEMM (ops::grouped_linear, which itself falls
// back to a loop of at::linear when the weights are not 16-bit like the rows, e.g. under
// autocast); elsewhere one Mlp per expert with rows, which on the CPU keeps the Mlp's inference
// path.
at::Tensor MoeBlockImpl::experts_forward(const at::Tensor& rows, const ops::Dispatch& d) {
  const auto offsets = d.offsets.accessor<int64_t, 1>();
  if (ops::cuda_kernels_for(rows, router_.kernels)) {
    const std::vector<int64_t> off(offsets.data(), offsets.data() + num_experts_ + 1);
    std::vector<at::Tensor> gate, up, down;
    for (int64_t e = 0; e < num_experts_; ++e) {
      const MlpImpl* mlp = experts_[e]->as<Mlp>();
      gate.push_back(mlp->gate_weight());
      up.push_back(mlp->up_weight());
      down.push_back(mlp->down_weight());
    }
    const at::Tensor a = at::silu(ops::grouped_linear(rows, off, gate, router_.kernels)) *
                         ops::grouped_linear(rows, off, up, router_.kernels);
    return ops::grouped_linear(a, off, down, router_.kernels);
  }
  std::vector<at::Tensor> outputs;
  outputs.reserve(num_experts_);
  for (int64_t e = 0; e < num_experts_; ++e) {
    const int64_t count = offsets[e + 1] - offsets[e];
    if (count == 0) continue;
    outputs.push_back(experts_[e]->as<Mlp>()->forward(rows.narrow(0, offsets[e], count)));
  }
  return at::cat(outputs, 0);
}

at::Tensor MoeBlockImpl::forward(const at::Tensor& x, MoeStats& stats) {
  const auto sizes = x.sizes().vec();
  const at::Tensor flat = x.reshape({-1, x.size(-1)});        // (N, H)
  const at::Tensor logits = at::linear(flat, gate_->weight);  // (N, E)
  const ops::Routing routing = ops::route(logits, router_, gate_->correction_bias);
  const ops::Dispatch d = ops::dispatch(routing.experts, num_experts_, router_.kernels);
  const at::Tensor rows = ops::permute(flat, d);  // (N*k, H) by expert
  at::Tensor out = ops::combine(experts_forward(rows, d), routing.weights, d, flat.size(0));
  if (shared_expert_) {
    at::Tensor shared = shared_expert_(flat);
    if (shared_expert_gate_) shared = at::sigmoid(shared_expert_gate_(flat)) * shared;
    out = out + shared;
  }
  at::Tensor counts = d.counts;
  if (stats.token_mask.defined()) {
    // Padding tokens are routed too (their rows are computed) but not counted or penalised.
    const at::Tensor real =
        stats.token_mask.to(routing.experts.device()).unsqueeze(1).expand_as(routing.experts);
    counts = at::bincount(routing.experts.masked_select(real), {}, num_experts_);
  }
  stats.counts.push_back(counts);
  if (stats.want_losses) {
    stats.balance.push_back(ops::load_balancing_loss(routing, num_experts_, stats.token_mask));
    stats.z.push_back(ops::router_z_loss(logits, stats.token_mask));
  }
  return out.view(sizes);
}

}  // namespace grpo::model

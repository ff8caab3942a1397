// Activation checkpointing of one decoder layer (DecoderLayerImpl::forward_recomputed). LibTorch's
// C++ API has no torch.utils.checkpoint: here a custom autograd function runs the layer without
// recording autograd, keeping only its inputs, and its backward runs the layer again, recording,
// and backpropagates through that with torch::autograd::grad. The parameters are inputs of the
// function, so their gradients reach their AccumulateGrad nodes (and the data-parallel reducer's
// hooks there) through the ordinary backward.
#include <torch/csrc/autograd/autograd.h>
#include <torch/torch.h>

#include <memory>
#include <utility>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/model/modules.h"
#include "grpo/torch_compat.h"

namespace grpo::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Autocast of one device type set to a recorded state (the recompute must cast as the forward did,
// whatever the caller of backward() has on), with the weight-cast cache off for the guard's
// lifetime: a cast cached by the no-grad forward has no autograd history, and a recompute that
// reused it would leave the weight without a gradient. Each weight is cast once per layer anyway.
class AutocastAs {
 public:
  AutocastAs(at::DeviceType device, bool enabled, at::ScalarType dtype)
      : device_(device),
        previous_enabled_(compat::autocast_enabled(device)),
        previous_dtype_(compat::autocast_dtype(device)),
        previous_cache_(at::autocast::is_autocast_cache_enabled()) {
    at::autocast::set_autocast_cache_enabled(false);
    compat::set_autocast_dtype_for(device_, dtype);
    compat::set_autocast_enabled_for(device_, enabled);
  }
  ~AutocastAs() {
    compat::set_autocast_enabled_for(device_, previous_enabled_);
    compat::set_autocast_dtype_for(device_, previous_dtype_);
    at::autocast::set_autocast_cache_enabled(previous_cache_);
  }
  AutocastAs(const AutocastAs&) = delete;
  AutocastAs& operator=(const AutocastAs&) = delete;

 private:
  at::DeviceType device_;
  bool previous_enabled_;
  at::ScalarType previous_dtype_;
  bool previous_cache_;
};

// The layer's differentiable outputs, in this order: the hidden state (B, T, H); with `record`
// the layer's keys and values (B, Hkv, T, D); with MoE losses requested the balance and z losses
// (scalars). Plus the router's token counts (E) int64 of a MoE layer.
struct LayerOutputs {
  variable_list values;
  at::Tensor counts;
};

// One call of a decoder layer: what it needs besides its tensor inputs, kept by the autograd node
// until its backward. The tensor inputs are the activations (x, then the prefix's keys and values
// of this layer when continuing a prefix), then the parameters that require grad.
struct LayerCall : torch::CustomClassHolder {
  std::shared_ptr<DecoderLayerImpl> layer;
  int64_t index = 0, num_layers = 0;
  at::Tensor cos, sin;       // (B, T, D)
  at::Tensor key_mask;       // (B, S) bool or undefined
  at::Tensor prefix_rows;    // (B) int64 with a prefix
  at::Tensor token_mask;     // (B*T) bool or undefined: MoE statistics
  bool record = false;       // return the layer's keys and values (ForwardOptions::record_prefix)
  bool with_prefix = false;  // x continues a prefix (ForwardOptions::prefix)
  bool moe_losses = false;   // MoeStats::want_losses
  size_t activations = 1;    // leading tensor inputs that are activations, not parameters
  at::DeviceType device = at::kCPU;
  bool autocast = false;
  at::ScalarType autocast_dtype = at::kFloat;
  at::Tensor counts;  // set by the forward for the caller: the MoE router's counts

  LayerOutputs run(const variable_list& inputs) const {
    PrefixKV recorded, prefix;
    ForwardOptions o;
    if (record) {
      recorded.keys.resize(static_cast<size_t>(num_layers));
      recorded.values.resize(static_cast<size_t>(num_layers));
      o.record_prefix = &recorded;
    }
    if (with_prefix) {
      prefix.keys.resize(static_cast<size_t>(num_layers));
      prefix.values.resize(static_cast<size_t>(num_layers));
      prefix.keys[static_cast<size_t>(index)] = inputs[1];
      prefix.values[static_cast<size_t>(index)] = inputs[2];
      o.prefix = &prefix;
      o.prefix_rows = prefix_rows;
    }
    MoeStats stats;
    stats.want_losses = moe_losses;
    stats.token_mask = token_mask;
    LayerOutputs out;
    out.values.push_back(layer->forward(inputs[0], cos, sin, key_mask, o, stats));
    if (record) {
      out.values.push_back(recorded.keys[static_cast<size_t>(index)]);
      out.values.push_back(recorded.values[static_cast<size_t>(index)]);
    }
    if (!stats.counts.empty()) out.counts = stats.counts.front();
    if (moe_losses && !stats.balance.empty()) {
      out.values.push_back(stats.balance.front());
      out.values.push_back(stats.z.front());
    }
    return out;
  }
};

class RecomputedLayer : public torch::autograd::Function<RecomputedLayer> {
 public:
  static variable_list forward(AutogradContext* ctx, const c10::intrusive_ptr<LayerCall>& call,
                               at::TensorList inputs) {
    ctx->set_materialize_grads(false);
    ctx->save_for_backward(inputs.vec());
    ctx->saved_data["call"] = c10::IValue::make_capsule(call);
    LayerOutputs out;
    {
      AutocastAs amp(call->device, call->autocast, call->autocast_dtype);
      out = call->run(inputs.vec());
    }
    call->counts = out.counts;
    return out.values;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto call =
        c10::static_intrusive_pointer_cast<LayerCall>(ctx->saved_data["call"].toCapsule());
    // A backward with create_graph would need this function's gradients to record autograd too.
    GRPO_CHECK(!at::GradMode::is_enabled(), "recomputed layer ", call->index,
               ": activation checkpointing does not support double backward (create_graph)");
    const variable_list saved = ctx->get_saved_variables();
    // The activations cut from the graph before the layer; the parameters as they are, so that
    // autograd::grad reports their gradients (without accumulating them into .grad).
    variable_list inputs;
    for (size_t i = 0; i < saved.size(); ++i) {
      inputs.push_back(i < call->activations
                           ? saved[i].detach().requires_grad_(saved[i].requires_grad())
                           : saved[i]);
    }
    LayerOutputs out;
    {
      at::AutoGradMode grad_mode(true);
      AutocastAs amp(call->device, call->autocast, call->autocast_dtype);
      out = call->run(inputs);
    }
    GRPO_CHECK(out.values.size() == grads.size(), "recomputed layer ", call->index, ": ",
               out.values.size(), " outputs, the forward had ", grads.size());
    variable_list outputs, output_grads;
    for (size_t i = 0; i < grads.size(); ++i) {
      if (grads[i].defined() && out.values[i].requires_grad()) {
        outputs.push_back(out.values[i]);
        output_grads.push_back(grads[i]);
      }
    }
    variable_list wrt;
    std::vector<size_t> where;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].requires_grad()) {
        wrt.push_back(inputs[i]);
        where.push_back(i);
      }
    }
    variable_list result(inputs.size() + 1);  // the first forward argument is the call
    if (outputs.empty() || wrt.empty()) return result;
    const variable_list g = torch::autograd::grad(outputs, wrt, output_grads,
                                                  /*retain_graph=*/false, /*create_graph=*/false,
                                                  /*allow_unused=*/true);
    for (size_t k = 0; k < where.size(); ++k) result[where[k] + 1] = g[k];
    return result;
  }
};

}  // namespace

at::Tensor DecoderLayerImpl::forward_recomputed(const at::Tensor& x, const at::Tensor& cos,
                                                const at::Tensor& sin, const at::Tensor& key_mask,
                                                const ForwardOptions& options, MoeStats& stats) {
  GRPO_CHECK(options.cache == nullptr,
             "decoder layer: activation checkpointing does not run through a KV cache");
  auto call = c10::make_intrusive<LayerCall>();
  call->layer = std::static_pointer_cast<DecoderLayerImpl>(shared_from_this());
  call->index = layer_;
  call->num_layers = num_layers_;
  call->cos = cos;
  call->sin = sin;
  call->key_mask = key_mask;
  call->token_mask = stats.token_mask;
  call->moe_losses = stats.want_losses;
  call->record = options.record_prefix != nullptr;
  call->with_prefix = options.prefix != nullptr;
  call->device = x.device().type();
  call->autocast = compat::autocast_enabled(call->device);
  call->autocast_dtype = compat::autocast_dtype(call->device);
  std::vector<at::Tensor> inputs{x};
  if (call->with_prefix) {
    call->prefix_rows = options.prefix_rows;
    inputs.push_back(options.prefix->keys[static_cast<size_t>(layer_)]);
    inputs.push_back(options.prefix->values[static_cast<size_t>(layer_)]);
  }
  call->activations = inputs.size();
  for (const auto& p : parameters()) {
    if (p.requires_grad()) inputs.push_back(p);
  }
  variable_list out = RecomputedLayer::apply(call, at::TensorList(inputs));
  size_t next = 1;
  if (call->record) {
    options.record_prefix->keys[static_cast<size_t>(layer_)] = out[next++];
    options.record_prefix->values[static_cast<size_t>(layer_)] = out[next++];
  }
  if (call->counts.defined()) {
    stats.counts.push_back(call->counts);
    call->counts = at::Tensor();
  }
  if (call->moe_losses && next < out.size()) {
    stats.balance.push_back(out[next++]);
    stats.z.push_back(out[next++]);
  }
  return out.front();
}

}  // namespace grpo::model

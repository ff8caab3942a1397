// Bucketed gradient all-reduce, started from autograd accumulator hooks when armed.
#include "grpo/dist/gradient_reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <mutex>

#include "grpo/core/error.h"

namespace grpo::dist {
namespace {

// std::shared_ptr<Node> in LibTorch 1.13, c10::intrusive_ptr<Node> in recent 2.x.
using AccumulatorPtr =
    decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

size_t byte_size(const at::Tensor& t) { return static_cast<size_t>(t.numel()) * t.element_size(); }

}  // namespace

std::vector<std::vector<size_t>> plan_buckets(const std::vector<at::Tensor>& tensors,
                                              size_t bucket_bytes) {
  std::vector<std::vector<size_t>> buckets;
  size_t used = 0;
  for (size_t k = tensors.size(); k-- > 0;) {
    const auto& t = tensors[k];
    bool fresh = buckets.empty();
    if (!fresh) {
      const auto& head = tensors[buckets.back().front()];
      fresh = head.scalar_type() != t.scalar_type() || head.device() != t.device() ||
              used + byte_size(t) > bucket_bytes;
    }
    if (fresh) {
      buckets.emplace_back();
      used = 0;
    }
    buckets.back().push_back(k);
    used += byte_size(t);
  }
  return buckets;
}

struct GradientReducer::State {
  struct Bucket {
    std::vector<size_t> members;  // parameter indices
    std::vector<int64_t> offsets;
    at::Tensor flat;  // (elements,) the members' dtype and device
    size_t ready = 0;
    ProcessGroup::Pending pending;
  };

  ProcessGroup& group;
  std::vector<std::pair<std::string, at::Tensor>> params;
  std::vector<Bucket> buckets;
  std::vector<size_t> bucket_of;  // parameter -> bucket
  std::vector<at::Tensor> views;  // parameter -> its slice of its bucket, shaped as it
  std::vector<char> ready;        // parameter accumulated during the armed backward
  std::vector<AccumulatorPtr> accumulators;
  std::vector<uintptr_t> hook_keys;
  std::mutex mutex;
  bool armed = false;
  size_t next_launch = 0;  // buckets start strictly in order, the same on every rank
  int64_t launched_in_backward = 0;
  int64_t in_bucket = 0;  // gradients found in their bucket slices by launch() this step
  ReducerStats stats;

  explicit State(ProcessGroup& g) : group(g) {}

  // Whether p's gradient is its bucket slice (autograd accumulated straight into the bucket).
  bool grad_in_bucket(size_t p) const {
    const auto& grad = params[p].second.grad();
    return grad.defined() && grad.data_ptr() == views[p].data_ptr();
  }

  void launch(size_t b) {
    at::NoGradGuard no_grad;
    auto& bucket = buckets[b];
    for (size_t k = 0; k < bucket.members.size(); ++k) {
      const size_t p = bucket.members[k];
      if (grad_in_bucket(p)) {
        ++in_bucket;
        continue;
      }
      const auto& grad = params[p].second.grad();
      if (grad.defined()) {
        views[p].copy_(grad);
      } else {
        views[p].zero_();
      }
    }
    bucket.pending =
        group.all_reduce_async(bucket.flat, ReduceOp::sum, "gradient bucket " + std::to_string(b));
  }

  // Autograd calls this once the parameter's gradient of this backward is accumulated.
  void on_accumulated(size_t p) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed || ready[p]) return;
    ready[p] = 1;
    ++buckets[bucket_of[p]].ready;
    while (next_launch < buckets.size() &&
           buckets[next_launch].ready == buckets[next_launch].members.size()) {
      launch(next_launch++);
      ++launched_in_backward;
    }
  }
};

GradientReducer::GradientReducer(ProcessGroup& group,
                                 std::vector<std::pair<std::string, at::Tensor>> params,
                                 size_t bucket_bytes)
    : state_(std::make_unique<State>(group)) {
  auto& s = *state_;
  s.params = std::move(params);
  std::vector<at::Tensor> tensors;
  for (const auto& item : s.params) {
    GRPO_CHECK(item.second.requires_grad() && item.second.is_leaf(),
               "gradient reducer: ", item.first, " is not a trainable leaf parameter");
    tensors.push_back(item.second);
  }
  s.bucket_of.resize(s.params.size());
  s.views.resize(s.params.size());
  s.ready.assign(s.params.size(), 0);
  for (const auto& members : plan_buckets(tensors, std::max<size_t>(bucket_bytes, 1))) {
    State::Bucket bucket;
    bucket.members = members;
    int64_t elements = 0;
    for (size_t p : members) {
      bucket.offsets.push_back(elements);
      elements += s.params[p].second.numel();
      s.bucket_of[p] = s.buckets.size();
    }
    bucket.flat = at::zeros({elements}, s.params[members.front()].second.options());
    for (size_t k = 0; k < members.size(); ++k) {
      const auto& param = s.params[members[k]].second;
      s.views[members[k]] =
          bucket.flat.narrow(0, bucket.offsets[k], param.numel()).view(param.sizes());
    }
    s.buckets.push_back(std::move(bucket));
  }
  // Gradients as views of the buckets (as DDP's gradient_as_bucket_view): backward accumulates
  // into the buckets, which then need no copy in or out and no memory of their own.
  at::NoGradGuard no_grad;
  for (size_t p = 0; p < s.params.size(); ++p) {
    auto& grad = s.params[p].second.mutable_grad();
    if (grad.defined()) s.views[p].copy_(grad);
    grad = s.views[p];
  }
  State* raw = state_.get();
  for (size_t p = 0; p < s.params.size(); ++p) {
    auto accumulator = torch::autograd::impl::grad_accumulator(s.params[p].second);
    auto hook = std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [raw, p](const torch::autograd::variable_list& outputs,
                 const torch::autograd::variable_list& /*inputs*/) {
          raw->on_accumulated(p);
          return outputs;
        });
    s.hook_keys.push_back(accumulator->add_post_hook(std::move(hook)));
    s.accumulators.push_back(std::move(accumulator));
  }
  s.stats.buckets = static_cast<int64_t>(s.buckets.size());
}

GradientReducer::~GradientReducer() {
  for (size_t p = 0; p < state_->accumulators.size(); ++p) {
    state_->accumulators[p]->del_post_hook(state_->hook_keys[p]);
  }
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->armed = true;
}

void GradientReducer::finish() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  while (s.next_launch < s.buckets.size()) s.launch(s.next_launch++);
  for (auto& bucket : s.buckets) s.group.wait(bucket.pending);
  at::NoGradGuard no_grad;
  for (auto& bucket : s.buckets) {
    // A gradient that was not the bucket slice (one that was set to none and made anew) becomes
    // it again: the slice holds the sum.
    for (size_t p : bucket.members) {
      if (!s.grad_in_bucket(p)) s.params[p].second.mutable_grad() = s.views[p];
    }
    bucket.ready = 0;
  }
  s.stats.grads_in_buckets = s.in_bucket;
  s.in_bucket = 0;
  std::fill(s.ready.begin(), s.ready.end(), 0);
  s.stats.launched_during_backward = s.launched_in_backward;
  s.launched_in_backward = 0;
  s.next_launch = 0;
  s.armed = false;
}

ReducerStats GradientReducer::stats() const { return state_->stats; }

}  // namespace grpo::dist

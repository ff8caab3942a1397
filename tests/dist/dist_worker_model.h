// The tiny regression net, data and loss shared by dist_worker (the ranks) and gloo_test (the
// single-process reference): the loss of rows [begin, begin + n) is their share of the mean
// squared error over the whole global batch, so shares add up to the full-batch loss.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace grpo::testing {

constexpr int64_t kGlobalBatch = 10;  // 2 ranks x 5 rows
constexpr int64_t kMicro = 2;         // micro-batches of 2, 2, 1 rows on each rank
constexpr int kSteps = 3;
constexpr double kLr = 0.05;
constexpr size_t kBucketBytes = 512;  // several buckets; fc2.weight (1 KiB) gets its own

struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl() {
    torch::manual_seed(7);  // the same weights on every rank
    fc1 = register_module("fc1", torch::nn::Linear(6, 16));
    fc2 = register_module("fc2", torch::nn::Linear(16, 16));
    fc3 = register_module("fc3", torch::nn::Linear(16, 3));
  }
  at::Tensor forward(const at::Tensor& x) { return fc3(torch::tanh(fc2(torch::tanh(fc1(x))))); }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
};
TORCH_MODULE(TinyNet);

struct Data {
  at::Tensor x;  // (kGlobalBatch, 6) fp32
  at::Tensor y;  // (kGlobalBatch, 3) fp32
};

inline Data make_data() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  return {at::randn({kGlobalBatch, 6}, gen, at::kFloat),
          at::randn({kGlobalBatch, 3}, gen, at::kFloat)};
}

inline at::Tensor loss_share(TinyNet& net, const Data& d, int64_t begin, int64_t n) {
  auto diff = net->forward(d.x.narrow(0, begin, n)) - d.y.narrow(0, begin, n);
  return diff.pow(2).sum() / static_cast<double>(kGlobalBatch * 3);
}

inline std::vector<std::pair<std::string, at::Tensor>> named(TinyNet& net) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : net->named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

inline at::Tensor flat_params(TinyNet net) {
  std::vector<at::Tensor> parts;
  for (const auto& p : net->parameters()) parts.push_back(p.detach().reshape(-1));
  return at::cat(parts);
}

}  // namespace grpo::testing

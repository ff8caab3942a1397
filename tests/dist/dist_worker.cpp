// One rank of the two-process Gloo tests (tests/dist/gloo_test.cpp starts two of these with
// RANK/WORLD_SIZE/MASTER_* set). `dist_worker SCENARIO OUT_DIR [TIMEOUT_S]` runs a scenario and
// writes what it saw to OUT_DIR/rank<R>.json; the test asserts on those files.
#include <torch/torch.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "dist_worker_model.h"
#include "grpo/core/error.h"
#include "grpo/dist/collectives.h"
#include "grpo/dist/env.h"
#include "grpo/dist/gradient_reducer.h"
#include "grpo/dist/process_group.h"

using grpo::dist::ProcessGroup;
using grpo::dist::ReduceOp;
using grpo::dist::Reduction;
using nlohmann::json;

namespace {

std::vector<double> values_of(const at::Tensor& t) {
  auto c = t.to(at::kDouble).contiguous().view(-1);
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

json collectives(ProcessGroup& group) {
  const double r = group.rank() + 1;
  json out;
  auto t = at::tensor({r, 10 * r}, at::kFloat);
  group.all_reduce(t, ReduceOp::sum, "sum");
  out["sum"] = values_of(t);
  t = at::tensor({r, 10 * r}, at::kFloat);
  group.all_reduce(t, ReduceOp::max, "max");
  out["max"] = values_of(t);
  t = at::tensor({r, 10 * r}, at::kDouble);
  group.all_reduce(t, ReduceOp::min, "min");
  out["min"] = values_of(t);
  out["reduce_values"] = grpo::dist::reduce_values(
      group, {r, r, r, r}, {Reduction::sum, Reduction::mean, Reduction::max, Reduction::min},
      "values");
  out["gather"] = grpo::dist::gather_values(group, {r, r + 0.5}, "gather");
  auto b = at::full({3}, static_cast<int64_t>(group.rank()), at::kLong);
  group.broadcast(b, 1, "broadcast");
  out["broadcast_from_1"] = values_of(b);
  // bfloat16, which Gloo lacks: it travels as float32 and comes back bfloat16. 256 + 1.5 rounds
  // to 258 (bfloat16's spacing at 256 is 2).
  auto h = at::tensor({1.5 * r, group.rank() == 0 ? 256.0 : 1.5}, at::kFloat).to(at::kBFloat16);
  group.all_reduce(h, ReduceOp::sum, "bf16 sum");
  out["bf16_sum"] = values_of(h);
  out["bf16_dtype"] = std::string(c10::toString(h.scalar_type()));
  auto hb = at::full({2}, r + 0.25, at::kBFloat16);
  group.broadcast(hb, 1, "bf16 broadcast");
  out["bf16_broadcast_from_1"] = values_of(hb);
  const auto hg = group.all_gather(at::full({1}, r + 0.5, at::kBFloat16), "bf16 gather");
  out["bf16_gather"] = values_of(hg);
  out["bf16_gather_dtype"] = std::string(c10::toString(hg.scalar_type()));
  group.barrier("barrier");
  grpo::dist::check_same_config(group, "0123456789abcdef");
  grpo::testing::TinyNet net;
  grpo::dist::check_same_parameters(group, grpo::testing::named(net), "start");
  out["checks"] = "passed";
  return out;
}

// Trains two copies of the same net on this rank's shard: one reducing with the hooks armed
// before the last micro-batch, one reducing only after the backward passes.
json reducer(ProcessGroup& group) {
  json out;
  for (bool overlap : {true, false}) {
    grpo::testing::TinyNet net;
    auto params = grpo::testing::named(net);
    grpo::dist::GradientReducer reducer(group, params, grpo::testing::kBucketBytes);
    torch::optim::SGD sgd(net->parameters(),
                          torch::optim::SGDOptions(grpo::testing::kLr).momentum(0.9));
    const auto data = grpo::testing::make_data();
    const int64_t per_rank = grpo::testing::kGlobalBatch / group.size();
    for (int step = 0; step < grpo::testing::kSteps; ++step) {
      // Zeroed in place, as train::Optimizer does: the gradients are views of the buckets
      // (LibTorch 1.13's zero_grad detaches them in place, which a view does not allow).
      for (auto& p : net->parameters()) {
        if (p.grad().defined()) p.mutable_grad().zero_();
      }
      const int64_t begin = group.rank() * per_rank;
      for (int64_t m = begin; m < begin + per_rank; m += grpo::testing::kMicro) {
        const int64_t n = std::min(grpo::testing::kMicro, begin + per_rank - m);
        if (overlap && m + n == begin + per_rank) reducer.arm();
        grpo::testing::loss_share(net, data, m, n).backward();
      }
      reducer.finish();
      sgd.step();
    }
    json entry;
    entry["buckets"] = reducer.stats().buckets;
    entry["launched_during_backward"] = reducer.stats().launched_during_backward;
    entry["grads_in_buckets"] = reducer.stats().grads_in_buckets;
    entry["grad_is_bucket_view"] = true;
    for (const auto& p : net->parameters()) {
      entry["grad_is_bucket_view"] = entry["grad_is_bucket_view"].get<bool>() &&
                                     p.grad().defined() && p.grad()._base().defined();
    }
    entry["params"] = values_of(grpo::testing::flat_params(net));
    out[overlap ? "overlap" : "no_overlap"] = entry;
  }
  return out;
}

// Rank 1 runs another config hash, then holds a parameter nudged by 1e-6: both checks must stop
// every rank with a message naming what differs.
json mismatches(ProcessGroup& group) {
  json out;
  try {
    grpo::dist::check_same_config(group,
                                  group.rank() == 1 ? "ffffffffffffffff" : "0123456789abcdef");
    out["config_error"] = "";
  } catch (const grpo::Error& e) {
    out["config_error"] = e.what();
    out["config_kind"] = e.kind() == grpo::ErrorKind::config;
  }
  grpo::testing::TinyNet net;
  if (group.rank() == 1) {
    torch::NoGradGuard no_grad;
    net->named_parameters()["fc2.bias"][0] += 1e-6f;
  }
  try {
    grpo::dist::check_same_parameters(group, grpo::testing::named(net), "start");
    out["param_error"] = "";
  } catch (const grpo::Error& e) {
    out["param_error"] = e.what();
  }
  return out;
}

// Rank 1 leaves (dead_peer) or stops answering (stuck_peer); rank 0 keeps reducing.
json peer_failure(ProcessGroup& group, bool dead) {
  json out;
  if (group.rank() == 1) {
    if (dead) _exit(3);
    std::this_thread::sleep_for(std::chrono::seconds(60));
    _exit(0);
  }
  const auto start = std::chrono::steady_clock::now();
  try {
    for (int i = 0; i < 1000000; ++i) {
      auto t = at::ones({1024});
      group.all_reduce(t, ReduceOp::sum, "gradient bucket 0");
    }
    out["error"] = "";
  } catch (const grpo::Error& e) {
    out["error"] = e.what();
  }
  out["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: dist_worker SCENARIO OUT_DIR [TIMEOUT_S]\n";
    return 2;
  }
  const std::string scenario = argv[1], out_dir = argv[2];
  const double timeout_s = argc > 3 ? std::stod(argv[3]) : 30.0;
  try {
    const auto env = grpo::dist::env_from_process();
    ProcessGroup group(env, grpo::config::DistBackend::gloo, at::kCPU, timeout_s);
    json out;
    if (scenario == "collectives") out = collectives(group);
    if (scenario == "reducer") out = reducer(group);
    if (scenario == "mismatches") out = mismatches(group);
    if (scenario == "dead_peer") out = peer_failure(group, true);
    if (scenario == "stuck_peer") out = peer_failure(group, false);
    std::ofstream(out_dir + "/rank" + std::to_string(env.rank) + ".json") << out.dump();
    // Leave at once: a peer that failed on purpose may still hold the group's sockets.
    std::cout.flush();
    _exit(0);
  } catch (const std::exception& e) {
    std::cerr << "dist_worker: " << e.what() << "\n";
    return 1;
  }
}

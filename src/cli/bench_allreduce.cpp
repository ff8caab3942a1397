// `grpo bench allreduce`: the all-reduce speed of the process group that training uses, for a
// few message sizes (run it under grpo launch or torchrun; alone, it forms a one-rank group,
// which checks that the backend works). Rank 0 prints the median time, the
// algorithm bandwidth (bytes / time) and the bus bandwidth (x 2(n-1)/n, as nccl-tests reports
// it, comparable across world sizes). Prints, never asserts.
#include <torch/torch.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/error.h"
#include "grpo/dist/env.h"
#include "grpo/dist/process_group.h"
#include "grpo/torch_compat.h"
#include "verbs.h"

namespace grpo::cli {
namespace {

struct BenchAllreduceOptions {
  std::vector<double> mb{1, 16, 64};
  int repeat = 10;
  std::string device = "auto";
  double timeout_s = 120;
};

void run(const BenchAllreduceOptions& o) {
  auto env = dist::env_from_process();
  if (!env.distributed()) {
    // Alone: a one-rank group (a quick check that the backend works, e.g. NCCL on one GPU).
    env.master_addr = "127.0.0.1";
    env.master_port = dist::free_local_port();
  }
  at::Device device(at::kCPU);
  if (o.device == "cuda" || (o.device == "auto" && compat::cuda_device_count() > 0)) {
    device = at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
  }
  dist::ProcessGroup group(env, config::DistBackend::automatic, device, o.timeout_s);
  if (env.is_main()) {
    std::printf("all-reduce (sum, fp32) over %d ranks, %s backend on %s\n", env.world_size,
                dist::backend_name(group.backend()), device.str().c_str());
    std::printf("%10s %12s %14s %14s\n", "MiB", "median ms", "algbw GB/s", "busbw GB/s");
  }
  for (double mb : o.mb) {
    const auto n = static_cast<int64_t>(mb * 1024 * 1024 / 4);
    auto t = at::ones({std::max<int64_t>(n, 1)}, at::TensorOptions().device(device));
    group.all_reduce(t, dist::ReduceOp::sum, "warm-up");
    std::vector<double> times;
    for (int i = 0; i < o.repeat; ++i) {
      group.barrier("bench barrier");
      if (device.is_cuda()) torch::cuda::synchronize();
      const auto start = std::chrono::steady_clock::now();
      group.all_reduce(t, dist::ReduceOp::sum, "bench");
      if (device.is_cuda()) torch::cuda::synchronize();
      times.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    const double median = times[times.size() / 2];
    const double bytes = static_cast<double>(t.numel()) * 4;
    const double algbw = bytes / median / 1e9;
    const double busbw = algbw * 2.0 * (env.world_size - 1) / env.world_size;
    if (env.is_main()) {
      std::printf("%10.2f %12.3f %14.3f %14.3f\n", mb, median * 1e3, algbw, busbw);
      std::fflush(stdout);
    }
  }
}

}  // namespace

void add_bench_allreduce(CLI::App& bench) {
  auto* cmd = bench.add_subcommand("allreduce", "All-reduce speed across the launched ranks");
  auto o = std::make_shared<BenchAllreduceOptions>();
  cmd->add_option("--mb", o->mb, "Message sizes in MiB")->capture_default_str();
  cmd->add_option("--repeat", o->repeat, "Timed runs per size (median reported)")
      ->capture_default_str();
  cmd->add_option("--device", o->device, "auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--timeout-s", o->timeout_s, "Collective timeout")->capture_default_str();
  cmd->callback([o] { run(*o); });
}

}  // namespace grpo::cli

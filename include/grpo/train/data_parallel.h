// The trainer's side of data parallelism (docs/distributed.md). One object that, for a single
// process, holds no process group and makes every call an identity or a no-op, and otherwise
// owns the process group and the gradient reducer: each rank trains on its shard of a step's
// prompts, and these calls make the ranks agree (config, parameters, resume step, stop), sum
// what must be global (token counts, gradients, loss statistics) and reduce the metrics.
#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "grpo/core/config/distributed.h"
#include "grpo/core/metrics.h"
#include "grpo/dist/collectives.h"
#include "grpo/dist/env.h"
#include "grpo/train/optimizer.h"

namespace grpo::dist {
class GradientReducer;
}  // namespace grpo::dist

namespace grpo::train {

// The device of this rank: cuda:LOCAL_RANK when `picked` is a CUDA device (an error when this
// host has no such GPU), else `picked`.
at::Device rank_device(const at::Device& picked, const dist::Env& env);

// How a step metric combines over ranks: "time/*", "memory/*" and names whose last part is or
// contains a "max" word ("*/max", "*_max_abs_diff") take the maximum (the slowest rank sets the
// pace), "min" likewise the minimum, "throughput/*" and "dynamic_sampling/kept_groups" the sum,
// everything else the mean (every
// rank holds the same number of completions, so means of per-completion values are the global
// means). DataParallel::reduce_metrics pools "x/std" beside "x/mean" from the ranks' moments.
dist::Reduction metric_reduction(const std::string& name);

class DataParallel {
 public:
  // Joins the process group when env.world_size > 1 (collectives on `device`).
  DataParallel(const config::DistributedConfig& config, const dist::Env& env,
               const at::Device& device);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // A later run in the same process group (grpo train's SFT stage, then its GRPO run) takes its
  // own bucket size, optimizer sharding and parameter-check period; the backend and timeout
  // stay the group's.
  void use_settings(const config::DistributedConfig& config);
  // The device the ranks' training tensors live on (the one given to the constructor).
  const at::Device& device() const { return device_; }

  bool active() const { return group_ != nullptr; }
  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const dist::Env& env() const { return env_; }

  // Every rank must run the same config: a config error on every rank otherwise.
  void check_config(const std::string& config_hash);
  // Every rank must have resumed from the same step (a shared run directory).
  void check_resume_step(int64_t step);
  // Checks that the parameters are identical on every rank and builds the gradient reducer
  // over them (distributed.bucket_mb).
  void start(const NamedParameters& params);
  // Drops the gradient reducer (its buckets, and the hooks that keep the parameters alive): at
  // the end of a run whose process group lives on.
  void release();
  // After step `steps_done`: the parameter check again when distributed.param_check_every
  // divides it.
  void periodic_check(int64_t steps_done, const NamedParameters& params);

  // AdamW over `params` (start() first): whole in this process, or sharded over the ranks when
  // distributed.shard_optimizer is set (ShardedAdamW; one process then owns all of it).
  std::unique_ptr<Optimizer> make_optimizer(const NamedParameters& params,
                                            const config::TrainerConfig& trainer);

  // Call before the last backward of an optimizer step: its buckets overlap the backward.
  void before_last_backward();
  // Sums the gradients over the ranks (before clipping and the optimizer step).
  void reduce_gradients();

  // Element-wise sums over the ranks.
  std::vector<double> sum(const std::vector<double>& values, const std::string& what);
  // In place, any device and dtype (loss statistics).
  void sum_(at::Tensor& tensor, const std::string& what);
  // The minimum over the ranks.
  int64_t min(int64_t value, const std::string& what);
  // Every rank's values (the same length on every rank) concatenated in rank order: the step's
  // rewards, so that advantages see the whole batch. This rank's come at rank() * size.
  std::vector<double> gather(const std::vector<double>& values, const std::string& what);
  // True on every rank when `flag` is true on any (a stop signal seen by one rank).
  bool any(bool flag, const std::string& what);
  // Combines the step's metrics over the ranks with metric_reduction().
  void reduce_metrics(metrics::StepMetrics& metrics);

 private:
  size_t bucket_bytes() const { return static_cast<size_t>(config_.bucket_mb * 1024.0 * 1024.0); }

  config::DistributedConfig config_;
  dist::Env env_;
  at::Device device_;
  std::unique_ptr<dist::ProcessGroup> group_;
  std::unique_ptr<dist::GradientReducer> reducer_;
};

// The process group a run trains in: `shared` when the caller made one for several runs
// (TrainOptions::data_parallel: grpo train's SFT stage, then its GRPO run), which takes this
// run's settings and must have been made for the run's device (a config error otherwise); else a
// new one for `env`, kept in `own`.
DataParallel& run_data_parallel(DataParallel* shared, std::unique_ptr<DataParallel>& own,
                                const config::DistributedConfig& config, const dist::Env& env,
                                const at::Device& device);

}  // namespace grpo::train

// Data parallelism as the GRPO loop sees it: identity for one process, c10d otherwise.
#include "grpo/train/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>

#include "grpo/core/error.h"
#include "grpo/core/log.h"
#include "grpo/dist/gradient_reducer.h"
#include "grpo/dist/process_group.h"
#include "grpo/torch_compat.h"
#include "grpo/train/sharded_adamw.h"

namespace grpo::train {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Whether `word` is one of the '_'-separated words of the name's last '/' part.
bool has_word(const std::string& name, const std::string& word) {
  const std::string last =
      name.substr(name.rfind('/') == std::string::npos ? 0 : name.rfind('/') + 1);
  size_t start = 0;
  while (start <= last.size()) {
    const size_t end = std::min(last.find('_', start), last.size());
    if (last.compare(start, end - start, word) == 0 && end - start == word.size()) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

at::Device rank_device(const at::Device& picked, const dist::Env& env) {
  if (!picked.is_cuda()) return picked;
  const int64_t count = compat::cuda_device_count();
  GRPO_CHECK_KIND(config, env.local_rank < count, "LOCAL_RANK=", env.local_rank,
                  " but this host has ", count, " CUDA device(s): start at most one rank per GPU");
  return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

dist::Reduction metric_reduction(const std::string& name) {
  if (starts_with(name, "time/") || starts_with(name, "memory/") || has_word(name, "max")) {
    return dist::Reduction::max;
  }
  if (has_word(name, "min")) return dist::Reduction::min;
  // Rates and counts of the whole step.
  if (starts_with(name, "throughput/") || name == "dynamic_sampling/kept_groups") {
    return dist::Reduction::sum;
  }
  return dist::Reduction::mean;
}

DataParallel::DataParallel(const config::DistributedConfig& config, const dist::Env& env,
                           const at::Device& device)
    : config_(config), env_(env), device_(device) {
  if (!env.distributed()) return;
  group_ = std::make_unique<dist::ProcessGroup>(env, config.backend, device, config.timeout_s);
}

DataParallel::~DataParallel() = default;

void DataParallel::use_settings(const config::DistributedConfig& config) {
  config_.bucket_mb = config.bucket_mb;
  config_.shard_optimizer = config.shard_optimizer;
  config_.param_check_every = config.param_check_every;
}

void DataParallel::check_config(const std::string& config_hash) {
  if (active()) dist::check_same_config(*group_, config_hash);
}

void DataParallel::check_resume_step(int64_t step) {
  if (!active()) return;
  const auto steps = dist::gather_values(*group_, {static_cast<double>(step)}, "resume check");
  for (size_t r = 1; r < steps.size(); ++r) {
    GRPO_CHECK(steps[r] == steps[0], "rank ", r, " resumes from step ", steps[r],
               " but rank 0 from step ", steps[0],
               ": every rank must see the same run directory (a shared filesystem)");
  }
}

void DataParallel::start(const NamedParameters& params) {
  if (!active()) return;
  dist::check_same_parameters(*group_, params, "start");
  reducer_ = std::make_unique<dist::GradientReducer>(*group_, params, bucket_bytes());
  if (is_main()) {
    log::info("data parallel over ", world_size(), " ranks: ", reducer_->stats().buckets,
              " gradient bucket(s) of at most ", config_.bucket_mb, " MiB");
  }
}

void DataParallel::release() { reducer_.reset(); }

void DataParallel::periodic_check(int64_t steps_done, const NamedParameters& params) {
  if (!active() || config_.param_check_every <= 0) return;
  if (steps_done % config_.param_check_every != 0) return;
  dist::check_same_parameters(*group_, params, "step " + std::to_string(steps_done));
}

std::unique_ptr<Optimizer> DataParallel::make_optimizer(const NamedParameters& params,
                                                        const config::TrainerConfig& trainer) {
  if (!config_.shard_optimizer) return make_whole_adamw(params, trainer);
  auto sharded = std::make_unique<ShardedAdamW>(params, trainer, group_.get(), bucket_bytes());
  if (is_main()) {
    int64_t whole = 0;
    for (const auto& item : params) whole += 2 * item.second.numel() * item.second.element_size();
    auto mib = [](int64_t bytes) { return std::round(static_cast<double>(bytes) / 104857.6) / 10; };
    log::info("optimizer state sharded over ", world_size(),
              " rank(s): ", mib(sharded->state_bytes()),
              " MiB of AdamW moments per rank (whole: ", mib(whole), " MiB)");
  }
  return sharded;
}

void DataParallel::before_last_backward() {
  if (reducer_) reducer_->arm();
}

void DataParallel::reduce_gradients() {
  if (reducer_) reducer_->finish();
}

std::vector<double> DataParallel::sum(const std::vector<double>& values, const std::string& what) {
  if (!active()) return values;
  return dist::reduce_values(
      *group_, values, std::vector<dist::Reduction>(values.size(), dist::Reduction::sum), what);
}

void DataParallel::sum_(at::Tensor& tensor, const std::string& what) {
  if (!active()) return;
  auto on_group = tensor.to(group_->device()).contiguous();
  group_->all_reduce(on_group, dist::ReduceOp::sum, what);
  tensor.copy_(on_group);
}

int64_t DataParallel::min(int64_t value, const std::string& what) {
  if (!active()) return value;
  return static_cast<int64_t>(
      dist::reduce_values(*group_, {static_cast<double>(value)}, {dist::Reduction::min}, what)[0]);
}

std::vector<double> DataParallel::gather(const std::vector<double>& values,
                                         const std::string& what) {
  if (!active()) return values;
  return dist::gather_values(*group_, values, what);
}

bool DataParallel::any(bool flag, const std::string& what) {
  if (!active()) return flag;
  return dist::reduce_values(*group_, {flag ? 1.0 : 0.0}, {dist::Reduction::max}, what)[0] > 0;
}

void DataParallel::reduce_metrics(metrics::StepMetrics& metrics) {
  if (!active()) return;
  // Pooled standard deviations ("x/std" beside "x/mean"): E[x^2] = std^2 + mean^2 is averaged
  // over the ranks and the global mean squared subtracted (every rank holds as many samples).
  const auto& items = metrics.values();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < items.size(); ++i) index[items[i].first] = i;
  std::vector<double> values;
  std::vector<dist::Reduction> ops;
  std::vector<std::optional<size_t>> mean_of(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& [name, value] = items[i];
    if (ends_with(name, "/std")) {
      auto it = index.find(name.substr(0, name.size() - 4) + "/mean");
      if (it != index.end()) mean_of[i] = it->second;
    }
    if (mean_of[i]) {
      const double mean = items[*mean_of[i]].second;
      values.push_back(value * value + mean * mean);
      ops.push_back(dist::Reduction::mean);
    } else {
      values.push_back(value);
      ops.push_back(metric_reduction(name));
    }
  }
  const auto reduced = dist::reduce_values(*group_, values, ops, "metrics");
  std::vector<std::pair<std::string, double>> out;
  for (size_t i = 0; i < items.size(); ++i) {
    double v = reduced[i];
    if (mean_of[i]) {
      const double mean = reduced[*mean_of[i]];
      v = std::sqrt(std::max(0.0, v - mean * mean));
    }
    out.emplace_back(items[i].first, v);
  }
  for (const auto& [name, value] : out) metrics.set(name, value);
}

DataParallel& run_data_parallel(DataParallel* shared, std::unique_ptr<DataParallel>& own,
                                const config::DistributedConfig& config, const dist::Env& env,
                                const at::Device& device) {
  if (!shared) {
    own = std::make_unique<DataParallel>(config, env, device);
    return *own;
  }
  GRPO_CHECK_KIND(config, !shared->active() || shared->device() == device,
                  "trainer.device: this run trains on ", device.str(),
                  " but its ranks' process group was made for ", shared->device().str(),
                  ": give every stage of the run the same trainer.device");
  shared->use_settings(config);
  return *shared;
}

}  // namespace grpo::train

// `distributed:` section: c10d process group settings (ranks come from the environment).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

enum class DistBackend { automatic, nccl, gloo };
inline const std::vector<std::pair<DistBackend, std::string>>& enum_names(DistBackend) {
  static const std::vector<std::pair<DistBackend, std::string>> k{
      {DistBackend::automatic, "auto"}, {DistBackend::nccl, "nccl"}, {DistBackend::gloo, "gloo"}};
  return k;
}

struct DistributedConfig {
  DistBackend backend = DistBackend::automatic;  // auto: nccl for CUDA, gloo for CPU
  double timeout_s = 600;                        // a collective that takes longer is an error
  double bucket_mb = 25;                         // gradient all-reduce bucket size
  int param_check_every = 0;                     // steps between parameter checksums; 0: start only
  bool shard_optimizer = false;                  // ZeRO-1: each rank holds 1/W of the AdamW state

  template <class V>
  void visit(V& v) {
    v("backend", backend);
    v("timeout_s", timeout_s, greater_than(0));
    v("bucket_mb", bucket_mb, greater_than(0));
    v("param_check_every", param_check_every, at_least(0));
    v("shard_optimizer", shard_optimizer);
  }
};

}  // namespace grpo::config

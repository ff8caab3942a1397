// The reward functions and dataset field names of the offline verbs (`grpo reward`, `grpo eval`):
// a config file's `reward:` and `data:` sections, or --reward names with default options.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config/data.h"
#include "grpo/core/config/reward.h"

namespace grpo::cli {

// With `config_file`: its `reward:` section (required) and `data:` section (optional; the rest of
// a training config is ignored); `names`, when given, select among its functions. Without it:
// one function per name, default options, weight 1 (at least one name is required).
void load_reward_setup(const std::string& config_file, const std::vector<std::string>& names,
                       config::RewardConfig& rc, config::DataConfig& data);

}  // namespace grpo::cli

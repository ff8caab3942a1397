// See reward_setup.h.
#include "reward_setup.h"

#include "grpo/core/config_node.h"
#include "grpo/core/error.h"

namespace grpo::cli {

void load_reward_setup(const std::string& config_file, const std::vector<std::string>& names,
                       config::RewardConfig& rc, config::DataConfig& data) {
  if (!config_file.empty()) {
    config::Node root = config::load_file(config_file);
    const config::Node* reward = root.get("reward");
    GRPO_CHECK_KIND(config, reward != nullptr, config_file, ": has no `reward:` section");
    config::bind(*reward, rc, "reward");
    if (const config::Node* d = root.get("data")) config::bind(*d, data, "data");
    if (!names.empty()) {  // --reward picks among the configured functions
      std::vector<config::RewardFunctionConfig> picked;
      for (const auto& name : names) {
        bool found = false;
        for (const auto& f : rc.functions) {
          if (f.name == name) picked.push_back(f), found = true;
        }
        GRPO_CHECK_KIND(usage, found, "--reward ", name, ": not in ", config_file,
                        "'s reward.functions");
      }
      rc.functions = std::move(picked);
    }
    return;
  }
  GRPO_CHECK_KIND(usage, !names.empty(), "give --config FILE or at least one --reward NAME");
  for (const auto& name : names) {
    config::RewardFunctionConfig f;
    f.name = name;
    rc.functions.push_back(f);
  }
}

}  // namespace grpo::cli

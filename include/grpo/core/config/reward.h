// `reward:` section: the weighted list of rule-based reward functions. Each function's
// `options` map is bound by the reward layer to that function's own typed options struct.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

struct RewardFunctionConfig {
  std::string name;  // math_boxed, format_think_answer, code_tests, external, ...
  double weight = 1.0;
  Node options;  // function-specific; validated by the reward layer

  template <class V>
  void visit(V& v) {
    v("name", name, non_empty());
    v("weight", weight);
    v("options", options);
  }
  void check(Checker& c) const {
    c.require(!name.empty(), "name",
              "is required: the reward function to use (see docs/rewards.md)");
  }
};

struct RewardConfig {
  std::vector<RewardFunctionConfig> functions;

  template <class V>
  void visit(V& v) {
    v("functions", functions);
  }
};

}  // namespace grpo::config

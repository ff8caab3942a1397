// `rollout:` section: how G completions per prompt are sampled.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

struct RolloutConfig {
  int n = 8;  // G, completions per prompt
  int max_new_tokens = 512;
  double temperature = 1.0;  // 0: greedy
  double top_p = 1.0;
  int top_k = 0;  // 0: off
  double min_p = 0.0;
  std::vector<std::string> stop;  // stop strings, matched on decoded text
  bool include_stop_str = false;  // keep the matched stop string in the text the rewards see
  int max_tokens_in_flight = 0;   // cap on prompt+generated tokens held at once; 0: no cap

  template <class V>
  void visit(V& v) {
    v("n", n, at_least(1));
    v("max_new_tokens", max_new_tokens, at_least(1));
    v("temperature", temperature, at_least(0));
    v("top_p", top_p, in_range(0, 1));
    v("top_k", top_k, at_least(0));
    v("min_p", min_p, in_range(0, 1));
    v("stop", stop);
    v("include_stop_str", include_stop_str);
    v("max_tokens_in_flight", max_tokens_in_flight, at_least(0));
  }
  void check(Checker& c) const {
    c.require(top_p > 0, "top_p", "must be > 0 (1.0 disables nucleus sampling)");
  }
};

}  // namespace grpo::config

// The `external` reward: a user command, in any language, that reads one JSON object per line on
// stdin ({"prompt","completion","answer","tests"}) and writes one line per sample on stdout:
// a number, or {"score": number, ...} whose other keys become details. One process per batch,
// killed (with its process group) when it exceeds the timeout.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config_bind.h"
#include "grpo/reward/reward_function.h"

namespace grpo::reward {

struct ExternalOptions {
  std::string command;      // run with /bin/sh -c
  double timeout_s = 60.0;  // for the whole batch

  template <class V>
  void visit(V& v) {
    v("command", command, config::non_empty());
    v("timeout_s", timeout_s, config::greater_than(0.0));
  }
  void check(config::Checker& c) const {
    c.require(!command.empty(), "command", "is required: the program to run (/bin/sh -c)");
  }
};

class ExternalReward : public RewardFunction {
 public:
  explicit ExternalReward(ExternalOptions options) : options_(std::move(options)) {}
  const std::string& name() const override { return name_; }
  RewardResult score(const Sample& sample) const override;
  // Throws grpo::Error when the command fails, times out or answers malformed lines.
  std::vector<RewardResult> score_batch(const std::vector<Sample>& samples) const override;

 private:
  std::string name_ = "external";
  ExternalOptions options_;
};

}  // namespace grpo::reward

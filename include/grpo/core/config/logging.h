// `logging:` section: console verbosity and what each step records.
#pragma once

#include <string>
#include <vector>

#include "grpo/core/config_bind.h"

namespace grpo::config {

struct LoggingConfig {
  std::string level = "info";  // trace, debug, info, warn, error, off
  bool tensorboard = true;     // write an event file into the run directory
  int samples_per_step = 4;    // completions written to samples.jsonl each step
  std::vector<std::string> reflection_words{"wait",        "verify",  "check",
                                            "re-evaluate", "recheck", "double-check"};

  template <class V>
  void visit(V& v) {
    v("level", level, one_of({"trace", "debug", "info", "warn", "error", "off"}));
    v("tensorboard", tensorboard);
    v("samples_per_step", samples_per_step, at_least(0));
    v("reflection_words", reflection_words);
  }
};

}  // namespace grpo::config

// `checkpoint:` section: how often the policy and trainer state are saved, and how many kept.
#pragma once

#include "grpo/core/config_bind.h"

namespace grpo::config {

struct CheckpointConfig {
  int every = 50;     // steps between checkpoints; 0: only at the end
  int keep_last = 3;  // older checkpoints are deleted once a newer one is complete
  bool save_final = true;

  template <class V>
  void visit(V& v) {
    v("every", every, at_least(0));
    v("keep_last", keep_last, at_least(1));
    v("save_final", save_final);
  }
};

}  // namespace grpo::config

// The device a run computes on, from `trainer.device`.
#pragma once

#include <c10/core/Device.h>

#include "grpo/core/config/trainer.h"

namespace grpo::train {

// auto: the first CUDA device when one is usable, else the CPU; cuda without a usable device is
// a config error.
c10::Device pick_device(config::Device device);

}  // namespace grpo::train

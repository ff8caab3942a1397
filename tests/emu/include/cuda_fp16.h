// Emulated CUDA 16-bit float types (tests/emu): bfloat16 and half with round-to-nearest-even
// conversions, as cuda_bf16.h / cuda_fp16.h give them on the device.
#pragma once

#include "grpo_emu/half.h"

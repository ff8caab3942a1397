// trainer.device -> a LibTorch device.
#include "grpo/train/device.h"

#include <torch/cuda.h>

#include "grpo/core/error.h"

namespace grpo::train {

c10::Device pick_device(config::Device device) {
  const bool cuda = torch::cuda::is_available();
  switch (device) {
    case config::Device::cpu:
      return c10::Device(c10::kCPU);
    case config::Device::cuda:
      GRPO_CHECK_KIND(config, cuda, "trainer.device is cuda but no CUDA device is available");
      return c10::Device(c10::kCUDA, 0);
    case config::Device::automatic:
      break;
  }
  return cuda ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
}

}  // namespace grpo::train

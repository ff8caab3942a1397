// The one place that knows LibTorch version differences (Debian's 1.13 on the CPU box, PyTorch
// 2.x on GPU hosts). Code in the LibTorch layers calls these instead of testing versions itself.
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>

#define GRPO_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) ||       \
   (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace grpo::compat {

// The key of a parameter's entry in torch::optim::Optimizer::state() (a map of type `Map`): the
// parameter's TensorImpl address, as a string in 1.13 and as the pointer itself in 2.x.
template <class Map>
typename Map::key_type optimizer_state_key(const at::Tensor& param) {
  using Key = typename Map::key_type;
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream key;
    key << param.unsafeGetTensorImpl();
    return key.str();
  } else {
    return param.unsafeGetTensorImpl();
  }
}

// torch::cuda::device_count() returns size_t in 1.13 and int in 2.x.
inline int64_t cuda_device_count() { return static_cast<int64_t>(torch::cuda::device_count()); }

// Whether autocast is on for a device type, and its dtype; 2.4 replaced the per-device
// functions with ones taking the device type.
#if GRPO_TORCH_AT_LEAST(2, 4)
inline bool autocast_enabled(at::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
inline void set_autocast_enabled_for(at::DeviceType d, bool on) {
  at::autocast::set_autocast_enabled(d, on);
}
inline at::ScalarType autocast_dtype(at::DeviceType d) {
  return at::autocast::get_autocast_dtype(d);
}
inline void set_autocast_dtype_for(at::DeviceType d, at::ScalarType t) {
  at::autocast::set_autocast_dtype(d, t);
}
#else
inline bool autocast_enabled(at::DeviceType d) {
  return d == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
}
inline void set_autocast_enabled_for(at::DeviceType d, bool on) {
  if (d == at::kCUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
inline at::ScalarType autocast_dtype(at::DeviceType d) {
  return d == at::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                        : at::autocast::get_autocast_cpu_dtype();
}
inline void set_autocast_dtype_for(at::DeviceType d, at::ScalarType t) {
  if (d == at::kCUDA) {
    at::autocast::set_autocast_gpu_dtype(t);
  } else {
    at::autocast::set_autocast_cpu_dtype(t);
  }
}
#endif

// Autocast (mixed precision: float32 parameters, matmuls and friends in `dtype`) for one device
// type, for the guard's lifetime. A disabled guard does nothing.
class AutocastGuard {
 public:
  AutocastGuard(at::DeviceType device, at::ScalarType dtype, bool enabled)
      : device_(device), enabled_(enabled) {
    if (!enabled_) return;
    previous_enabled_ = autocast_enabled(device_);
    previous_dtype_ = autocast_dtype(device_);
    set_autocast_dtype_for(device_, dtype);
    set_autocast_enabled_for(device_, true);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (!enabled_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    set_autocast_enabled_for(device_, previous_enabled_);
    set_autocast_dtype_for(device_, previous_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  at::DeviceType device_;
  bool enabled_;
  bool previous_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kFloat;
};

}  // namespace grpo::compat

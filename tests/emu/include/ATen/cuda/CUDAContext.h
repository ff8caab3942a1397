// Emulated ATen CUDA context (tests/emu): the current stream, device properties and cuBLAS handle
// the ops wrappers ask for, with the CPU standing in for the device.
#pragma once

#include "cublas_v2.h"
#include "cuda_runtime.h"

namespace at::cuda {

struct DeviceProperties {
  int multiProcessorCount = 132;  // an H100 SXM
};

inline cudaStream_t getCurrentCUDAStream() { return nullptr; }
inline const DeviceProperties* getCurrentDeviceProperties() {
  static const DeviceProperties props;
  return &props;
}
inline cublasHandle_t getCurrentCUDABlasHandle() { return grpo_emu_cublas_handle(); }

}  // namespace at::cuda

// Reads one tensor of a .safetensors fixture (expected logits, inputs) into an ATen tensor.
#pragma once

#include <ATen/ATen.h>

#include <cstring>
#include <string>

#include "grpo/core/safetensors.h"

namespace grpo::testing {

// The tensor `name` of `f` as dtype `t` (which must be the file's dtype for the bytes to mean it).
inline at::Tensor read_tensor(const grpo::safetensors::File& f, const std::string& name,
                              at::ScalarType t) {
  const auto& info = f.at(name);
  at::Tensor out = at::empty(info.shape, at::TensorOptions().dtype(t));
  std::memcpy(out.data_ptr(), f.data(info), info.nbytes());
  return out;
}

}  // namespace grpo::testing

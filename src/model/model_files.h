// Safetensors dtypes <-> ATen dtypes, shared by the model layer's file readers and writers
// (checkpoint.cpp, lora.cpp). Internal to src/model.
#pragma once

#include <ATen/ATen.h>

#include "grpo/core/error.h"
#include "grpo/core/safetensors.h"

namespace grpo::model {

inline at::ScalarType from_file_dtype(safetensors::DType d) {
  switch (d) {
    case safetensors::DType::f32:
      return at::kFloat;
    case safetensors::DType::f16:
      return at::kHalf;
    case safetensors::DType::bf16:
      return at::kBFloat16;
    case safetensors::DType::i64:
      return at::kLong;
    case safetensors::DType::i32:
      return at::kInt;
    case safetensors::DType::i8:
      return at::kChar;
    case safetensors::DType::u8:
      return at::kByte;
    case safetensors::DType::boolean:
      return at::kBool;
  }
  return at::kFloat;
}

inline safetensors::DType to_file_dtype(at::ScalarType t) {
  switch (t) {
    case at::kFloat:
      return safetensors::DType::f32;
    case at::kHalf:
      return safetensors::DType::f16;
    case at::kBFloat16:
      return safetensors::DType::bf16;
    default:
      GRPO_FAIL("cannot save parameters of dtype ", c10::toString(t));
  }
}

}  // namespace grpo::model

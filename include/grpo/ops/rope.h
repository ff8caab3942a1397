// Rotary position embeddings: inverse frequencies for the scaling types the supported model
// families use (default, linear, llama3, yarn), cos/sin tables for given positions, and the
// rotation itself, which a fused kernel may later replace.
#pragma once

#include <ATen/ATen.h>

#include "grpo/ops/kernels.h"

#include <cstdint>
#include <string>

namespace grpo::ops {

enum class RopeType { standard, linear, llama3, yarn };

// "default" | "linear" | "llama3" | "yarn"; anything else throws naming the value.
RopeType parse_rope_type(const std::string& name);
const char* rope_type_name(RopeType type);

struct RopeParams {
  RopeType type = RopeType::standard;
  double theta = 10000.0;
  double factor = 1.0;                // linear, llama3, yarn
  double low_freq_factor = 1.0;       // llama3
  double high_freq_factor = 4.0;      // llama3
  int64_t original_max_position = 0;  // llama3, yarn (0: use max_position_embeddings)
  double beta_fast = 32.0;            // yarn
  double beta_slow = 1.0;             // yarn
  double attention_factor = 0.0;      // yarn; 0: derived from factor / mscale
  double mscale = 0.0;                // yarn
  double mscale_all_dim = 0.0;        // yarn
  bool truncate = true;               // yarn: round the correction range to integers
};

// Inverse frequencies (head_dim / 2) fp32 on CPU, and the factor that scales cos and sin
// (1 except for yarn). max_position is the model's max_position_embeddings.
struct RopeTable {
  at::Tensor inv_freq;  // (D/2) fp32
  double attention_scaling = 1.0;
};
RopeTable rope_table(int64_t head_dim, int64_t max_position, const RopeParams& params);

// positions (B, T) int64 -> cos, sin (B, T, D) in `dtype` on positions' device; the D/2
// frequencies are repeated twice (the rotate-half layout of the HF checkpoints).
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const RopeTable& table, const at::Tensor& positions,
                                               at::ScalarType dtype);

// x (B, H, T, D), cos/sin (B, T, D) -> x * cos + rotate_half(x) * sin, same shape and dtype.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                      KernelPolicy policy = KernelPolicy::automatic);

}  // namespace grpo::ops

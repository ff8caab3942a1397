// Mixture-of-experts routing kernels: fused gating, permutation into expert-contiguous order,
// unpermute with the weighted combine, their backwards, and the grouped expert GEMM (cuBLAS).
// Plain structs of pointers and sizes; no LibTorch. Row-major, contiguous unless a stride says.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "grpo/kernels/attention.h"  // DType

namespace grpo::kernels {

constexpr int kGateMaxExperts = 512;
constexpr int kGateMaxTopK = 32;

// scores = softmax(logits) or sigmoid(logits); choice = scores + bias; optional group-limited
// selection (group score = sum of the group's two best choices; keep topk_group groups); top_k
// experts by choice (ties: lower id); weights = scores of the chosen, optionally renormalised,
// times routed_scaling.
struct GateParams {
  int tokens = 0, experts = 0, top_k = 1;  // experts <= kGateMaxExperts, top_k <= kGateMaxTopK
  bool sigmoid = false;
  bool renormalize = false;
  float routed_scaling = 1.f;
  int n_group = 1, topk_group = 1;  // n_group <= 1: no group limit; n_group <= 32
  const float* logits = nullptr;    // (N, E) fp32
  const float* bias = nullptr;      // (E) fp32 or null
  float* scores = nullptr;          // (N, E) fp32 out
  float* weights = nullptr;         // (N, k) fp32 out
  int32_t* expert_ids = nullptr;    // (N, k) int32 out
};
cudaError_t moe_gate_forward(const GateParams& p, cudaStream_t stream);

// dlogits from the gradients of weights and scores (scores' may be null: zero).
struct GateBwdParams {
  int tokens = 0, experts = 0, top_k = 1;
  bool sigmoid = false, renormalize = false;
  float routed_scaling = 1.f;
  const float* scores = nullptr;        // (N, E) forward output
  const int32_t* expert_ids = nullptr;  // (N, k)
  const float* dweights = nullptr;      // (N, k)
  const float* dscores = nullptr;       // (N, E) or null
  float* dlogits = nullptr;             // (N, E) fp32 out
};
cudaError_t moe_gate_backward(const GateBwdParams& p, cudaStream_t stream);

// Stable expert-contiguous order of the N*k assignments a = token * k + slot.
struct PermuteIndexParams {
  int tokens = 0, top_k = 1, experts = 0;
  const int32_t* expert_ids = nullptr;  // (N, k) in [0, E)
  int32_t* chunk_counts = nullptr;      // workspace (ceil(N*k / kPermuteChunk), E)
  int64_t* counts = nullptr;            // (E) out
  int64_t* offsets = nullptr;           // (E+1) out (device)
  int64_t* order = nullptr;             // (N*k) out: assignment id at each sorted position
  int64_t* token_index = nullptr;       // (N*k) out: order / k
  int32_t* position = nullptr;          // (N*k) out: sorted position of each assignment
};
constexpr int kPermuteChunk = 256;
cudaError_t moe_permute_index(const PermuteIndexParams& p, cudaStream_t stream);

// rows[pos] = x[token_index[pos]] (forward), or dx[t] = sum_s drows[position[t*k+s]]
// (backward: `gather_sum`). hidden elements per row, rows contiguous.
struct PermuteRowsParams {
  DType dtype = DType::bfloat16;
  int tokens = 0, top_k = 1, hidden = 0;
  const int64_t* token_index = nullptr;  // (N*k)
  const int32_t* position = nullptr;     // (N*k)
  const void* in = nullptr;
  void* out = nullptr;
};
cudaError_t moe_permute_rows(const PermuteRowsParams& p, cudaStream_t stream);
cudaError_t moe_permute_rows_backward(const PermuteRowsParams& p, cudaStream_t stream);

// out[t] = sum_s weights[t, s] * y[position[t*k+s]], fp32 accumulation, out in dtype.
struct CombineParams {
  DType dtype = DType::bfloat16;
  int tokens = 0, top_k = 1, hidden = 0;
  const int32_t* position = nullptr;  // (N*k)
  const float* weights = nullptr;     // (N, k) fp32
  const void* y = nullptr;            // (N*k, H) expert outputs in sorted order
  void* out = nullptr;                // (N, H)
  // backward
  const void* dout = nullptr;  // (N, H)
  void* dy = nullptr;          // (N*k, H)
  float* dweights = nullptr;   // (N, k) fp32
};
cudaError_t moe_combine(const CombineParams& p, cudaStream_t stream);
cudaError_t moe_combine_backward(const CombineParams& p, cudaStream_t stream);

// One GEMM per group, row-major: C_g (m_g, n) = op(A_g) (m_g, k) * op(B_g) (k, n), with
// op(X) = X^T when trans_*; fp32 accumulation. Groups with m_g == 0 are skipped. Host arrays;
// small groups (`one_call_max_mean_macs`) use cublasGemmGroupedBatchedEx where the
// cuBLAS has it (device pointer arrays copied into `ptr_workspace`, 3 * groups pointers), large
// ones one cublasGemmEx per group on `stream` (faster there: grouped_gemm.cu).
struct GroupedGemmParams {
  DType dtype = DType::bfloat16;
  int groups = 0;
  bool trans_a = false, trans_b = false;
  const int64_t* m = nullptr;      // (groups) host
  const int64_t* n = nullptr;      // (groups) host
  const int64_t* k = nullptr;      // (groups) host
  const void* const* a = nullptr;  // (groups) host array of device pointers
  const void* const* b = nullptr;
  void* const* c = nullptr;
  const int64_t* lda = nullptr;  // row strides (host)
  const int64_t* ldb = nullptr;
  const int64_t* ldc = nullptr;
  float alpha = 1.f, beta = 0.f;
  void** ptr_workspace = nullptr;  // device, 3 * groups pointers (grouped path only)
  // One grouped call below this mean of multiply-adds per non-empty group, else a GEMM per group
  // (2^31: 128 rows of 2048 x 8192 take ~7 us at 600 TFLOP/s, about a launch's cost).
  double one_call_max_mean_macs = 2147483648.0;
};
cublasStatus_t grouped_gemm(cublasHandle_t handle, const GroupedGemmParams& p, cudaStream_t stream);

}  // namespace grpo::kernels

// Flash-style attention kernels: training forward/backward (causal, GQA, variable length) and
// decode over a KV cache with split-K. Plain structs of pointers, sizes and strides; no LibTorch.
// Strides are in elements; the head dimension is always contiguous (stride 1).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace grpo::kernels {

enum class DType { float16, bfloat16 };

// Head dims with compiled kernels.
inline bool attention_head_dim_supported(int head_dim) { return head_dim == 64 || head_dim == 128; }

// Where sequence b's rows start. Variable length: cu_seqlens (batch+1) int32, rows
// cu_seqlens[b] .. cu_seqlens[b+1] of a packed (total, H, D) tensor. Padded: cu_seqlens null,
// every sequence has `seqlen` rows starting at b * batch_stride.
struct SeqLayout {
  const int32_t* cu_seqlens = nullptr;  // (batch+1) int32 device, or null
  int seqlen = 0;                       // padded layout: rows per sequence (max when varlen)
};

// Causal alignment is bottom-right: query i of a sequence with Lq queries and Lk keys sits at
// position Lk - Lq + i and sees key j iff j <= Lk - Lq + i, j >= key_start[b] (left padding) and
// j < key_end[b] (right padding). A query that sees no key gets output 0 and lse +inf.
struct AttentionFwdParams {
  DType dtype = DType::bfloat16;
  int batch = 0, heads_q = 0, heads_kv = 0, head_dim = 0;  // heads_q % heads_kv == 0
  SeqLayout q_layout, k_layout;
  float scale = 1.f;
  const int32_t* key_start = nullptr;  // (batch) int32 device or null: keys before it are masked
  const int32_t* key_end = nullptr;    // (batch) int32 device or null: keys from it on are masked

  const void* q = nullptr;  // (B, Lq, Hq, D) via strides (or packed (total_q, Hq, D))
  int64_t q_batch_stride = 0, q_row_stride = 0, q_head_stride = 0;
  const void* k = nullptr;  // (B, Lk, Hkv, D)
  int64_t k_batch_stride = 0, k_row_stride = 0, k_head_stride = 0;
  const void* v = nullptr;  // (B, Lk, Hkv, D)
  int64_t v_batch_stride = 0, v_row_stride = 0, v_head_stride = 0;
  void* o = nullptr;  // (B, Lq, Hq, D) in dtype, rows 16-byte aligned
  int64_t o_batch_stride = 0, o_row_stride = 0, o_head_stride = 0;
  // (B, Hq, Lq) fp32 natural-log sum-exp of the scaled scores. Packed: index
  // h * lse_head_stride + cu_seqlens_q[b] + i; padded: b * lse_batch_stride + h * ... + i.
  float* lse = nullptr;
  int64_t lse_batch_stride = 0, lse_head_stride = 0;
};

cudaError_t attention_forward(const AttentionFwdParams& p, cudaStream_t stream);

// Backward: gradients of q, k, v given dO, O and the forward's lse. Workspace (all fp32,
// allocated by the caller): delta (same layout as lse), dq_accum (rows of Hq*D floats, same row
// indexing as q with batch stride Lq*Hq*D and row stride Hq*D; zeroed by this function).
struct AttentionBwdParams {
  AttentionFwdParams fwd;  // q, k, v, o, lse and the layout
  const void* dout = nullptr;
  int64_t do_batch_stride = 0, do_row_stride = 0, do_head_stride = 0;
  void* dq = nullptr;  // like q
  int64_t dq_batch_stride = 0, dq_row_stride = 0, dq_head_stride = 0;
  void* dk = nullptr;  // like k (Hkv heads: summed over the query heads of the group)
  int64_t dk_batch_stride = 0, dk_row_stride = 0, dk_head_stride = 0;
  void* dv = nullptr;  // like v
  int64_t dv_batch_stride = 0, dv_row_stride = 0, dv_head_stride = 0;
  float* delta = nullptr;     // workspace, lse layout
  float* dq_accum = nullptr;  // workspace, (rows_q, Hq, D) fp32
  int64_t dq_accum_rows = 0;  // batch * Lq (padded) or total_q (packed)
};

cudaError_t attention_backward(const AttentionBwdParams& p, cudaStream_t stream);

// Decode: one query per sequence against its cache, split along the keys into num_splits
// chunks whose partial results a combine kernel merges. Workspace: o_accum (splits, B, Hq, D)
// fp32 and lse_accum (splits, B, Hq) fp32.
struct DecodeParams {
  DType dtype = DType::bfloat16;
  int batch = 0, heads_q = 0, heads_kv = 0, head_dim = 0;
  int seqlen_k = 0;                    // keys per sequence (cache length) if seqlens_k is null
  const int32_t* seqlens_k = nullptr;  // (batch) int32 device or null
  const int32_t* key_start = nullptr;  // (batch) int32 device or null (left padding)
  const int32_t* key_end = nullptr;    // (batch) int32 device or null: keys from it on masked
  float scale = 1.f;
  const void* q = nullptr;  // (B, Hq, D)
  int64_t q_batch_stride = 0, q_head_stride = 0;
  const void* k = nullptr;  // (B, Hkv, S, D)
  int64_t k_batch_stride = 0, k_head_stride = 0, k_row_stride = 0;
  const void* v = nullptr;
  int64_t v_batch_stride = 0, v_head_stride = 0, v_row_stride = 0;
  void* o = nullptr;  // (B, Hq, D)
  int64_t o_batch_stride = 0, o_head_stride = 0;
  int num_splits = 1;
  float* o_accum = nullptr;    // (splits, B, Hq, D) fp32 workspace
  float* lse_accum = nullptr;  // (splits, B, Hq) fp32 workspace
};

// Enough splits for about 8 blocks per SM (several waves), none shorter than 256 keys, at most 64.
int decode_num_splits(int batch, int heads_kv, int max_seqlen_k, int num_sms);
// Query heads per KV head the decode kernel accepts.
constexpr int kDecodeMaxGroup = 16;

cudaError_t decode_attention(const DecodeParams& p, cudaStream_t stream);

}  // namespace grpo::kernels

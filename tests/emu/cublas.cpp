// Emulated cuBLAS (tests/emu/include/cublas_v2.h): the GEMMs kernels/grouped_gemm.cu calls, on
// host memory, with fp32 accumulation of the rounded inputs; each counts as a device call.
#include <algorithm>
#include <cstdint>

#include "cublas_v2.h"
#include "cuda_runtime.h"
#include "grpo_emu/half.h"
#include "grpo_emu/runtime.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

float load(const void* p, cudaDataType_t t, int64_t i) {
  switch (t) {
    case CUDA_R_16BF:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case CUDA_R_16F:
      return __half2float(static_cast<const __half*>(p)[i]);
    default:
      return static_cast<const float*>(p)[i];
  }
}

void store(void* p, cudaDataType_t t, int64_t i, float v) {
  switch (t) {
    case CUDA_R_16BF:
      static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
      break;
    case CUDA_R_16F:
      static_cast<__half*>(p)[i] = __float2half_rn(v);
      break;
    default:
      static_cast<float*>(p)[i] = v;
  }
}

// Column-major C (m, n) = alpha op(A) op(B) + beta C, with cuBLAS's checks on the leading
// dimensions (op(A) is m x k: A is m x k when not transposed, else k x m).
cublasStatus_t gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                    float alpha, const void* A, cudaDataType_t at, int64_t lda, const void* B,
                    cudaDataType_t bt, int64_t ldb, float beta, void* C, cudaDataType_t ct,
                    int64_t ldc) {
  if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (lda < std::max<int64_t>(1, ta == CUBLAS_OP_N ? m : k)) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldb < std::max<int64_t>(1, tb == CUBLAS_OP_N ? k : n)) return CUBLAS_STATUS_INVALID_VALUE;
  if (ldc < std::max<int64_t>(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
  if (at != bt || at == CUDA_R_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  grpo_emu::count_device_call();
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t i = 0; i < m; ++i) {
      float acc = 0.f;
      for (int64_t l = 0; l < k; ++l) {
        const float a = load(A, at, ta == CUBLAS_OP_N ? i + l * lda : l + i * lda);
        const float b = load(B, bt, tb == CUBLAS_OP_N ? l + j * ldb : j + l * ldb);
        acc += a * b;
      }
      const float old = beta == 0.f ? 0.f : load(C, ct, i + j * ldc);
      store(C, ct, i + j * ldc, alpha * acc + beta * old);
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

cublasHandle_t grpo_emu_cublas_handle() {
  static cublasContext handle;
  return &handle;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  *stream = handle->stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (computeType != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(transa, transb, m, n, k, *static_cast<const float*>(alpha), A, Atype, lda, B, Btype,
              ldb, *static_cast<const float*>(beta), C, Ctype, ldc);
}

cublasStatus_t cublasGemmGroupedBatchedEx_64(
    cublasHandle_t handle, const cublasOperation_t transa_array[],
    const cublasOperation_t transb_array[], const int64_t m_array[], const int64_t n_array[],
    const int64_t k_array[], const void* alpha_array, const void* const Aarray[],
    cudaDataType_t Atype, const int64_t lda_array[], const void* const Barray[],
    cudaDataType_t Btype, const int64_t ldb_array[], const void* beta_array, void* const Carray[],
    cudaDataType_t Ctype, const int64_t ldc_array[], int64_t group_count,
    const int64_t group_size[], cublasComputeType_t computeType) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (computeType != CUBLAS_COMPUTE_32F) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (group_count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const auto* alpha = static_cast<const float*>(alpha_array);
  const auto* beta = static_cast<const float*>(beta_array);
  int64_t problem = 0;
  for (int64_t g = 0; g < group_count; ++g) {
    for (int64_t i = 0; i < group_size[g]; ++i, ++problem) {
      const cublasStatus_t st =
          gemm(transa_array[g], transb_array[g], m_array[g], n_array[g], k_array[g], alpha[g],
               Aarray[problem], Atype, lda_array[g], Barray[problem], Btype, ldb_array[g], beta[g],
               Carray[problem], Ctype, ldc_array[g]);
      if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
  }
  return CUBLAS_STATUS_SUCCESS;
}

// Fused causal grouped-query attention on the CPU (see cpu_ops.h). For each (batch row, query
// head) and block of query rows, one BLAS product writes the scaled scores of the keys that block
// can see into a scratch buffer that stays in cache; the masked softmax runs in place; a second
// product writes the output rows. Keys before a row's first real key (left padding) and keys
// past a block's causal bound are never multiplied. Each row's log-sum-exp is kept; the backward
// recomputes the probabilities from it, as flash attention does, so no (T, S) tensor is saved.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu_ops.h"
#include "grpo/core/error.h"
#include "grpo/torch_compat.h"

// The CBLAS entry points (the BLAS that LibTorch itself loads on Debian: OpenBLAS through
// libblas.so.3). Declared here rather than through cblas.h, whose location varies.
extern "C" {
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha,
                 const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);
void cblas_dgemm(int order, int trans_a, int trans_b, int m, int n, int k, double alpha,
                 const double* a, int lda, const double* b, int ldb, double beta, double* c,
                 int ldc);
}

namespace grpo::ops::cpu {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;
// Query rows per product: small enough that a block's causal bound skips most of the masked
// upper triangle, large enough that the products stay efficient.
constexpr int64_t kBlockRows = 32;

// Row-major C (m, n) = alpha op(A) op(B) + beta C.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  cblas_dgemm(kRowMajor, ta ? kTrans : kNoTrans, tb ? kTrans : kNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// x[j] = exp(x[j] - shift) for x[j] - shift <= 0 (scores minus their row maximum). float32: a
// range reduction to 2^n exp(r), |r| <= ln2 / 2, and Cephes' degree-5 polynomial for exp(r)
// (about 1 ulp), written branch-free so the compiler vectorises the loop; arguments below
// -87.3 give about 1e-38 instead of a denormal. float64 (tests): std::exp.
__attribute__((target_clones("avx2", "default"))) void exp_shifted(float* x, int64_t n,
                                                                   float shift) {
  for (int64_t j = 0; j < n; ++j) {
    const float z = x[j] - shift;
    const float a = z < -87.3f ? -87.3f : z;  // a select (the file has -fno-trapping-math)
    const float fn = (a * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round(a / ln 2)
    const float r = (a - fn * 0.693359375f) - fn * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(fn) + 127) << 23;  // 2^fn
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    x[j] = e * scale;
  }
}
void exp_shifted(double* x, int64_t n, double shift) {
  for (int64_t j = 0; j < n; ++j) x[j] = std::exp(x[j] - shift);
}

// Eight independent lanes, so that the loops vectorise without reassociating a float sum.
template <typename T>
T row_max(const T* x, int64_t n) {
  T lanes[8];
  std::fill(lanes, lanes + 8, -std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] = x[j + l] > lanes[l] ? x[j + l] : lanes[l];
  }
  for (; j < n; ++j) lanes[0] = x[j] > lanes[0] ? x[j] : lanes[0];
  return *std::max_element(lanes, lanes + 8);
}

template <typename T>
T row_sum(const T* x, int64_t n) {
  T lanes[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += x[j + l];
  }
  for (; j < n; ++j) lanes[0] += x[j];
  T s = 0;
  for (T l : lanes) s += l;
  return s;
}

// Element strides of a (B, H, T, D) tensor whose last dimension is contiguous.
struct Rows {
  int64_t b, h, t;
};
template <typename T>
T* row_ptr(T* base, const Rows& s, int64_t b, int64_t h, int64_t t) {
  return base + b * s.b + h * s.h + t * s.t;
}
// A single row's stride is never read, but BLAS wants a leading dimension of at least D.
Rows rows_of(const at::Tensor& x) {
  return {x.stride(0), x.stride(1),
          x.size(2) <= 1 ? std::max(x.stride(2), x.size(3)) : x.stride(2)};
}
// Rows of D contiguous values that do not overlap (an expanded gradient has stride 0).
at::Tensor rows_contiguous(const at::Tensor& x) {
  const bool ok = x.stride(3) == 1 && (x.size(2) <= 1 || x.stride(2) >= x.size(3)) &&
                  x.stride(0) != 0 && x.stride(1) != 0;
  return ok ? x : x.contiguous();
}

// One call's geometry. Query row t sits at absolute position S - T + t and sees key j iff
// j <= S - T + t and the key mask allows j. lo[b] .. hi[b] bounds batch row b's real keys;
// holes[b] says whether masked keys lie between them.
struct Geometry {
  int64_t batch = 0, hq = 0, hkv = 0, groups = 1, t = 0, s = 0, d = 0, dv = 0;
  std::vector<int64_t> lo, hi;
  std::vector<char> holes;
  const bool* mask = nullptr;  // (B, S) or null

  // First row that sees a key: rows before it (left padding) see none.
  int64_t first_row(int64_t b) const { return std::clamp(lo[b] - (s - t), int64_t{0}, t); }
  // One past the last key row r may see.
  int64_t key_end(int64_t b, int64_t r) const { return std::min(hi[b], s - t + r + 1); }
};

// Tasks per thread for at::parallel_for: enough that each chunk does at least ~2^17
// multiply-adds (a parallel region costs microseconds, and on a busy machine a thread that is not
// scheduled stalls the others); a decode step (one query) then runs inline.
int64_t grain(const Geometry& g, int64_t rows_per_task) {
  const int64_t work = std::max<int64_t>(rows_per_task * g.s * (g.d + g.dv), 1);
  return std::max<int64_t>(1, (int64_t{1} << 17) / work);
}

Geometry geometry(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const at::Tensor& mask) {
  Geometry g;
  g.batch = q.size(0), g.hq = q.size(1), g.t = q.size(2), g.d = q.size(3);
  g.hkv = k.size(1), g.s = k.size(2), g.dv = v.size(3);
  g.groups = g.hq / g.hkv;
  g.lo.assign(g.batch, 0);
  g.hi.assign(g.batch, g.s);
  g.holes.assign(g.batch, 0);
  if (mask.numel() > 0) {
    g.mask = mask.data_ptr<bool>();
    for (int64_t b = 0; b < g.batch; ++b) {
      const bool* m = g.mask + b * g.s;
      int64_t lo = 0, hi = g.s;
      while (lo < g.s && !m[lo]) ++lo;
      while (hi > lo && !m[hi - 1]) --hi;
      g.lo[b] = lo, g.hi[b] = hi;
      g.holes[b] = std::find(m + lo, m + hi, false) != m + hi;
    }
  }
  return g;
}

// Probabilities of `rows` rows of batch row b in buf (rows of `cols` values for keys c0 ..):
// on entry the scaled scores, on exit softmax over the keys each row sees, zero elsewhere.
// Buffer row i is query r0 + i * row_step (row_step 0: the heads of a GQA group stacked for one
// decode query). With lse_in null the row maximum and sum are computed and the log-sum-exp
// stored in lse_out[i]; with lse_in (backward), p = exp(score - lse_in[i]).
template <typename T>
void softmax_rows(const Geometry& g, int64_t b, int64_t r0, int64_t rows, int64_t row_step,
                  int64_t c0, int64_t cols, T* buf, const T* lse_in, T* lse_out) {
  const bool* m = g.mask != nullptr ? g.mask + b * g.s + c0 : nullptr;
  for (int64_t i = 0; i < rows; ++i) {
    T* row = buf + i * cols;
    const int64_t n = g.key_end(b, r0 + i * row_step) - c0;  // >= 1: key lo is real, r >= first_row
    if (g.holes[b]) {
      for (int64_t j = 0; j < n; ++j) {
        if (!m[j]) row[j] = -std::numeric_limits<T>::infinity();
      }
    }
    const T shift = lse_in != nullptr ? lse_in[i] : row_max(row, n);
    exp_shifted(row, n, shift);
    if (g.holes[b]) {  // the exp of -inf is clamped to ~1e-38, not 0
      for (int64_t j = 0; j < n; ++j) {
        if (!m[j]) row[j] = 0;
      }
    }
    if (lse_in == nullptr) {
      const T sum = row_sum(row, n);
      const T inv = T(1) / sum;
      for (int64_t j = 0; j < n; ++j) row[j] *= inv;
      lse_out[i] = shift + std::log(sum);
    }
    std::fill(row + n, row + cols, T(0));
  }
}

struct ForwardResult {
  at::Tensor out;  // (B, Hq, T, Dv) view of a (B, T, Hq, Dv) tensor
  at::Tensor lse;  // (B, Hq, T)
};

template <typename T>
ForwardResult forward_impl(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                           double scale, const at::Tensor& mask) {
  const Geometry g = geometry(q, k, v, mask);
  at::Tensor out = at::zeros({g.batch, g.t, g.hq, g.dv}, q.options()).transpose(1, 2);
  at::Tensor lse = at::zeros({g.batch, g.hq, g.t}, q.options());
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  T* op = out.data_ptr<T>();
  T* lp = lse.data_ptr<T>();
  const Rows qs = rows_of(q), ks = rows_of(k), vs = rows_of(v), os = rows_of(out);
  if (g.t == 1 && g.groups > 1 && qs.h >= g.d && os.h >= g.dv) {
    // One query (decode): the group's heads are the rows of one product per KV head.
    at::parallel_for(0, g.batch * g.hkv, grain(g, g.groups), [&](int64_t begin, int64_t end) {
      std::vector<T> buf(static_cast<size_t>(g.groups * std::max<int64_t>(g.s, 1)));
      for (int64_t i = begin; i < end; ++i) {
        const int64_t b = i / g.hkv, kvh = i % g.hkv, h0 = kvh * g.groups;
        if (g.first_row(b) > 0) continue;  // no real key: zeros
        const int64_t c0 = g.lo[b], cols = g.key_end(b, 0) - c0;
        gemm(false, true, g.groups, cols, g.d, static_cast<T>(scale), row_ptr(qp, qs, b, h0, 0),
             qs.h, row_ptr(kp, ks, b, kvh, c0), ks.t, T(0), buf.data(), cols);
        softmax_rows<T>(g, b, 0, g.groups, 0, c0, cols, buf.data(), nullptr, lp + b * g.hq + h0);
        gemm(false, false, g.groups, g.dv, cols, T(1), buf.data(), cols,
             row_ptr(vp, vs, b, kvh, c0), vs.t, T(0), row_ptr(op, os, b, h0, 0), os.h);
      }
    });
    return {out, lse};
  }
  at::parallel_for(0, g.batch * g.hq, grain(g, g.t), [&](int64_t begin, int64_t end) {
    std::vector<T> buf(static_cast<size_t>(kBlockRows * std::max<int64_t>(g.s, 1)));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / g.hq, h = i % g.hq, kvh = h / g.groups;
      const int64_t c0 = g.lo[b];
      T* lse_row = lp + (b * g.hq + h) * g.t;
      for (int64_t r0 = g.first_row(b); r0 < g.t; r0 += kBlockRows) {
        const int64_t r1 = std::min(r0 + kBlockRows, g.t);
        const int64_t cols = g.key_end(b, r1 - 1) - c0;
        gemm(false, true, r1 - r0, cols, g.d, static_cast<T>(scale), row_ptr(qp, qs, b, h, r0),
             qs.t, row_ptr(kp, ks, b, kvh, c0), ks.t, T(0), buf.data(), cols);
        softmax_rows<T>(g, b, r0, r1 - r0, 1, c0, cols, buf.data(), nullptr, lse_row + r0);
        gemm(false, false, r1 - r0, g.dv, cols, T(1), buf.data(), cols, row_ptr(vp, vs, b, kvh, c0),
             vs.t, T(0), row_ptr(op, os, b, h, r0), os.t);
      }
    }
  });
  return {out, lse};
}

// dq, dk, dv for the forward above. Work is split by (batch row, KV head): the query heads of a
// group add into the same dK and dV rows, so one task owns them.
template <typename T>
variable_list backward_impl(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout,
                            double scale, const at::Tensor& mask) {
  const Geometry g = geometry(q, k, v, mask);
  at::Tensor dq = at::zeros(q.sizes(), q.options());
  at::Tensor dk = at::zeros(k.sizes(), k.options());
  at::Tensor dv = at::zeros(v.sizes(), v.options());
  const T* qp = q.data_ptr<T>();
  const T* kp = k.data_ptr<T>();
  const T* vp = v.data_ptr<T>();
  const T* op = out.data_ptr<T>();
  const T* dop = dout.data_ptr<T>();
  const T* lp = lse.data_ptr<T>();
  T* dqp = dq.data_ptr<T>();
  T* dkp = dk.data_ptr<T>();
  T* dvp = dv.data_ptr<T>();
  const Rows qs = rows_of(q), ks = rows_of(k), vs = rows_of(v), os = rows_of(out),
             dos = rows_of(dout), dqs = rows_of(dq), dks = rows_of(dk), dvs = rows_of(dv);
  const T sc = static_cast<T>(scale);
  at::parallel_for(
      0, g.batch * g.hkv, grain(g, 3 * g.groups * g.t), [&](int64_t begin, int64_t end) {
        const size_t block = static_cast<size_t>(kBlockRows * std::max<int64_t>(g.s, 1));
        std::vector<T> p(block), dp(block);
        for (int64_t i = begin; i < end; ++i) {
          const int64_t b = i / g.hkv, kvh = i % g.hkv;
          const int64_t c0 = g.lo[b];
          for (int64_t h = kvh * g.groups; h < (kvh + 1) * g.groups; ++h) {
            const T* lse_row = lp + (b * g.hq + h) * g.t;
            for (int64_t r0 = g.first_row(b); r0 < g.t; r0 += kBlockRows) {
              const int64_t r1 = std::min(r0 + kBlockRows, g.t), m = r1 - r0;
              const int64_t cols = g.key_end(b, r1 - 1) - c0;
              const T* q_rows = row_ptr(qp, qs, b, h, r0);
              const T* k_rows = row_ptr(kp, ks, b, kvh, c0);
              const T* v_rows = row_ptr(vp, vs, b, kvh, c0);
              const T* do_rows = row_ptr(dop, dos, b, h, r0);
              gemm(false, true, m, cols, g.d, sc, q_rows, qs.t, k_rows, ks.t, T(0), p.data(), cols);
              softmax_rows<T>(g, b, r0, m, 1, c0, cols, p.data(), lse_row + r0, nullptr);
              gemm(false, true, m, cols, g.dv, T(1), do_rows, dos.t, v_rows, vs.t, T(0), dp.data(),
                   cols);
              // dS = P * (dP - rowsum(dO * O)), times the scale of the scores.
              for (int64_t r = r0; r < r1; ++r) {
                const T* o_row = row_ptr(op, os, b, h, r);
                const T* do_row = row_ptr(dop, dos, b, h, r);
                T delta = 0;
                for (int64_t e = 0; e < g.dv; ++e) delta += o_row[e] * do_row[e];
                const T* p_row = p.data() + (r - r0) * cols;
                T* ds_row = dp.data() + (r - r0) * cols;
                for (int64_t j = 0; j < cols; ++j) ds_row[j] = p_row[j] * (ds_row[j] - delta) * sc;
              }
              gemm(false, false, m, g.d, cols, T(1), dp.data(), cols, k_rows, ks.t, T(0),
                   row_ptr(dqp, dqs, b, h, r0), dqs.t);
              gemm(true, false, cols, g.d, m, T(1), dp.data(), cols, q_rows, qs.t, T(1),
                   row_ptr(dkp, dks, b, kvh, c0), dks.t);
              gemm(true, false, cols, g.dv, m, T(1), p.data(), cols, do_rows, dos.t, T(1),
                   row_ptr(dvp, dvs, b, kvh, c0), dvs.t);
            }
          }
        }
      });
  return {dq, dk, dv};
}

ForwardResult forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                      const at::Tensor& mask) {
  return AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "cpu_attention",
                                    [&] { return forward_impl<scalar_t>(q, k, v, scale, mask); });
}

class AttentionFunction : public torch::autograd::Function<AttentionFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k,
                               const at::Tensor& v, double scale, const at::Tensor& mask) {
    ForwardResult r = cpu::forward(q, k, v, scale, mask);
    ctx->save_for_backward({q, k, v, r.out, r.lse, mask});
    ctx->saved_data["scale"] = scale;
    return {r.out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const double scale = ctx->saved_data["scale"].toDouble();
    const at::Tensor dout = rows_contiguous(grads[0]);
    variable_list g = AT_DISPATCH_FLOATING_TYPES(dout.scalar_type(), "cpu_attention_backward", [&] {
      return backward_impl<scalar_t>(saved[0], saved[1], saved[2], saved[3], saved[4], dout, scale,
                                     saved[5]);
    });
    g.push_back(at::Tensor());
    g.push_back(at::Tensor());
    return g;
  }
};

}  // namespace

bool attention_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const at::ScalarType dtype = q.scalar_type();
  return q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu() &&
         (dtype == at::kFloat || dtype == at::kDouble) && k.scalar_type() == dtype &&
         v.scalar_type() == dtype && !compat::autocast_enabled(at::kCPU) &&
         q.size(2) * std::max<int64_t>(k.size(2), 1) < (int64_t{1} << 31);
}

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, const at::Tensor& key_mask) {
  const at::Tensor qc = rows_contiguous(q), kc = rows_contiguous(k), vc = rows_contiguous(v);
  // No mask: an empty one (an undefined tensor cannot pass through an autograd function).
  const at::Tensor mask = key_mask.defined() ? key_mask.to(at::kBool).contiguous()
                                             : at::empty({0}, q.options().dtype(at::kBool));
  const bool grad =
      at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (!grad) return forward(qc, kc, vc, scale, mask).out;
  return AttentionFunction::apply(qc, kc, vc, scale, mask)[0];
}

}  // namespace grpo::ops::cpu

// Fused CPU RMSNorm and RoPE (see cpu_ops.h): one pass over the rows each way instead of the
// reference's chain of elementwise ops (RMSNorm: to, pow, mean, add, rsqrt, mul, to, mul; RoPE:
// two narrows, neg, cat, two muls, add), whose per-op dispatch dominates small CPU batches
// (decode steps) and whose backward keeps each intermediate.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

#include "cpu_ops.h"
#include "grpo/torch_compat.h"

namespace grpo::ops::cpu {

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

bool cpu_real(const at::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

// Rows per task: about ATen's grain for elementwise work (32768 values), so small calls (decode
// steps) run inline instead of paying for a parallel region.
int64_t grain_rows(int64_t width) {
  return std::max<int64_t>(1, int64_t{32768} / std::max<int64_t>(width, 1));
}

// Sum of x[j] * y[j] in eight independent lanes (vectorises without reassociating the sum).
template <typename T>
T dot(const T* x, const T* y, int64_t n) {
  T lanes[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += x[j + l] * y[j + l];
  }
  for (; j < n; ++j) lanes[0] += x[j] * y[j];
  T s = 0;
  for (T l : lanes) s += l;
  return s;
}

// ---- RMSNorm: y = w * (x / sqrt(mean(x^2) + eps)) over the last dimension.

template <typename T>
void norm_forward(const at::Tensor& x, const at::Tensor& w, double eps, at::Tensor& y,
                  at::Tensor& rstd) {
  const int64_t h = x.size(-1), rows = x.numel() / std::max<int64_t>(h, 1);
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  T* yp = y.data_ptr<T>();
  T* rp = rstd.data_ptr<T>();
  at::parallel_for(0, rows, grain_rows(h), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = xp + r * h;
      T* yr = yp + r * h;
      const T inv = T(1) / std::sqrt(dot(xr, xr, h) / static_cast<T>(h) + static_cast<T>(eps));
      rp[r] = inv;
      for (int64_t j = 0; j < h; ++j) yr[j] = wp[j] * (xr[j] * inv);
    }
  });
}

// dx = inv * (g - x * inv^2 * mean(g * x)) with g = dy * w; dw = sum over rows of dy * x * inv.
template <typename T>
void norm_backward(const at::Tensor& x, const at::Tensor& w, const at::Tensor& rstd,
                   const at::Tensor& dy, at::Tensor& dx, at::Tensor& dw) {
  const int64_t h = x.size(-1), rows = x.numel() / std::max<int64_t>(h, 1);
  const T* xp = x.data_ptr<T>();
  const T* wp = w.data_ptr<T>();
  const T* rp = rstd.data_ptr<T>();
  const T* dyp = dy.data_ptr<T>();
  T* dxp = dx.data_ptr<T>();
  T* dwp = dw.data_ptr<T>();
  std::mutex merge;
  at::parallel_for(0, rows, grain_rows(h), [&](int64_t begin, int64_t end) {
    std::vector<T> g(static_cast<size_t>(h)), dw_part(static_cast<size_t>(h), T(0));
    for (int64_t r = begin; r < end; ++r) {
      const T* xr = xp + r * h;
      const T* dyr = dyp + r * h;
      T* dxr = dxp + r * h;
      const T inv = rp[r];
      for (int64_t j = 0; j < h; ++j) g[j] = dyr[j] * wp[j];
      const T c = inv * inv * dot(g.data(), xr, h) / static_cast<T>(h);
      for (int64_t j = 0; j < h; ++j) {
        dxr[j] = inv * (g[j] - xr[j] * c);
        dw_part[j] += dyr[j] * (xr[j] * inv);
      }
    }
    const std::lock_guard<std::mutex> lock(merge);
    for (int64_t j = 0; j < h; ++j) dwp[j] += dw_part[j];
  });
}

// y and the per-row 1 / rms of contiguous x and w.
std::pair<at::Tensor, at::Tensor> rms_norm_forward(const at::Tensor& x, const at::Tensor& w,
                                                   double eps) {
  at::Tensor y = at::empty_like(x), rstd = at::empty({x.numel() / x.size(-1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "cpu_rms_norm",
                             [&] { norm_forward<scalar_t>(x, w, eps, y, rstd); });
  return {y, rstd};
}

class RmsNormFunction : public torch::autograd::Function<RmsNormFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                               double eps) {
    auto [y, rstd] = rms_norm_forward(x, w, eps);
    ctx->save_for_backward({x, w, rstd});
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor dy = grads[0].contiguous();
    at::Tensor dx = at::empty_like(saved[0]), dw = at::zeros_like(saved[1]);
    AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "cpu_rms_norm_backward", [&] {
      norm_backward<scalar_t>(saved[0], saved[1], saved[2], dy, dx, dw);
    });
    return {dx, dw, at::Tensor()};
  }
};

// ---- RoPE: y1 = x1 c1 - x2 s1, y2 = x2 c2 + x1 s2 on the halves of each head's vector;
// backward: dx1 = dy1 c1 + dy2 s2, dx2 = dy2 c2 - dy1 s1.

struct RopeGeometry {
  int64_t b, h, t, d;
  int64_t xs[3], ys[3];  // element strides of (B, H, T) in x (or dy) and in y (or dx)
};

template <typename T>
void rotate(const RopeGeometry& g, const T* x, const T* c, const T* s, T* y, bool inverse) {
  const int64_t half = g.d / 2;
  at::parallel_for(0, g.b * g.h * g.t, grain_rows(g.d), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t bi = i / (g.h * g.t), hi = (i / g.t) % g.h, ti = i % g.t;
      const T* xr = x + bi * g.xs[0] + hi * g.xs[1] + ti * g.xs[2];
      T* yr = y + bi * g.ys[0] + hi * g.ys[1] + ti * g.ys[2];
      const T* cr = c + (bi * g.t + ti) * g.d;
      const T* sr = s + (bi * g.t + ti) * g.d;
      if (!inverse) {
        for (int64_t j = 0; j < half; ++j) {
          yr[j] = xr[j] * cr[j] - xr[j + half] * sr[j];
          yr[j + half] = xr[j + half] * cr[j + half] + xr[j] * sr[j + half];
        }
      } else {
        for (int64_t j = 0; j < half; ++j) {
          yr[j] = xr[j] * cr[j] + xr[j + half] * sr[j + half];
          yr[j + half] = xr[j + half] * cr[j + half] - xr[j] * sr[j];
        }
      }
    }
  });
}

// y (or dx) in x's layout when that is dense, so a (B, T, H, D)-strided q stays so.
at::Tensor rotate_tensor(const at::Tensor& x, const at::Tensor& c, const at::Tensor& s,
                         bool inverse) {
  const at::Tensor xc = x.stride(3) == 1 ? x : x.contiguous();
  at::Tensor y = at::empty_like(xc);  // xc's strides when dense, else contiguous
  RopeGeometry g{xc.size(0), xc.size(1), xc.size(2), xc.size(3), {}, {}};
  for (int i = 0; i < 3; ++i) g.xs[i] = xc.stride(i), g.ys[i] = y.stride(i);
  AT_DISPATCH_FLOATING_TYPES(xc.scalar_type(), "cpu_rope", [&] {
    rotate<scalar_t>(g, xc.data_ptr<scalar_t>(), c.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(),
                     y.data_ptr<scalar_t>(), inverse);
  });
  return y;
}

class RopeFunction : public torch::autograd::Function<RopeFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& c,
                               const at::Tensor& s) {
    ctx->save_for_backward({c, s});
    return {rotate_tensor(x, c, s, /*inverse=*/false)};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    return {rotate_tensor(grads[0], saved[0], saved[1], /*inverse=*/true), at::Tensor(),
            at::Tensor()};
  }
};

bool needs_grad(const at::Tensor& x) { return at::GradMode::is_enabled() && x.requires_grad(); }

}  // namespace

bool rms_norm_supported(const at::Tensor& x, const at::Tensor& weight) {
  return cpu_real(x) && weight.scalar_type() == x.scalar_type() && weight.device().is_cpu() &&
         weight.dim() == 1 && x.dim() >= 1 && x.size(-1) == weight.size(0) && x.size(-1) > 0 &&
         !compat::autocast_enabled(at::kCPU);
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  const at::Tensor xc = x.contiguous(), wc = weight.contiguous();
  if (needs_grad(x) || needs_grad(weight)) return RmsNormFunction::apply(xc, wc, eps)[0];
  return rms_norm_forward(xc, wc, eps).first;
}

bool rope_supported(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  return cpu_real(x) && x.dim() == 4 && x.size(3) % 2 == 0 && cos.dim() == 3 &&
         cos.sizes() == sin.sizes() && cos.size(0) == x.size(0) && cos.size(1) == x.size(2) &&
         cos.size(2) == x.size(3) && cos.scalar_type() == x.scalar_type() &&
         sin.scalar_type() == x.scalar_type() && cos.device().is_cpu() && sin.device().is_cpu() &&
         !needs_grad(cos) && !needs_grad(sin) && !compat::autocast_enabled(at::kCPU);
}

at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  const at::Tensor c = cos.contiguous(), s = sin.contiguous();
  if (needs_grad(x)) return RopeFunction::apply(x, c, s)[0];
  return rotate_tensor(x, c, s, /*inverse=*/false);
}

}  // namespace grpo::ops::cpu

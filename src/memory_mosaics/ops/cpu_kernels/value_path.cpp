// The value path (ops/normalize.py with the peek mix) in one pass per (b, h) row; without γ, the plain scaled
// normalisation of keys and queries.
//
//   forward:  u_t = γ x_t + (1−γ) x_{t+1} (x_T := 0; u = x without γ),  n_t = ‖u_t‖,  y_t = s u_t / max(n_t, ε)
//   backward (t from 0 up), g = ∂L/∂y:
//     c_t = y_t·g_t,   ∂L/∂u_t = (s/m_t) g_t − [n_t ≥ ε] (c_t/(s m_t)) y_t,   m_t = max(n_t, ε)
//     ∂L/∂x_t = γ ∂L/∂u_t + (1−γ) ∂L/∂u_{t−1};   ∂L/∂s += c_t/s;   ∂L/∂γ += ∂L/∂u_t·(x_t − x_{t+1})
// The parameter gradients are summed per row in double and written per (b, h) (see key_path.cpp).
#include "common.h"

#include <vector>

namespace memory_mosaics {
namespace {

template <typename T>
void value_forward_rows(const at::Tensor& x, const at::Tensor& scale, const double* gamma_p, const at::Tensor& out,
                        const at::Tensor& norm) {
  const int64_t B = x.size(0), H = x.size(1), T_ = x.size(2), D = x.size(3);
  const Rows<T> X(x), Y(out);
  const double* s_p = scale.data_ptr<double>();
  T* n_p = norm.data_ptr<T>();
  parallel_row_blocks(B, H, T_, D, [&](int64_t b, int64_t h0, int64_t h1) {
    std::vector<T> buf(D);
    T* u = buf.data();
    for (int64_t t = 0; t < T_; ++t) {
      for (int64_t h = h0; h < h1; ++h) {
        const T s = static_cast<T>(s_p[h]);
        const T g = gamma_p ? static_cast<T>(gamma_p[h]) : T(1), g1 = T(1) - g;
        const T* xt = X.at(b, h, t);
        if (!gamma_p) {
          std::copy(xt, xt + D, u);
        } else if (t + 1 < T_) {
          const T* xn = X.at(b, h, t + 1);
          for (int64_t i = 0; i < D; ++i) u[i] = g * xt[i] + g1 * xn[i];
        } else {
          for (int64_t i = 0; i < D; ++i) u[i] = g * xt[i];
        }
        n_p[(b * H + h) * T_ + t] = scale_normalize(u, Y.at(b, h, t), s, D);
      }
    }
  });
}

template <typename T>
void value_backward_rows(const at::Tensor& grad, const at::Tensor& y, const at::Tensor& norm, const at::Tensor& x,
                         const at::Tensor& scale, const double* gamma_p, const at::Tensor& grad_x,
                         const at::Tensor& grad_scale, const at::Tensor& grad_gamma) {
  const int64_t B = y.size(0), H = y.size(1), T_ = y.size(2), D = y.size(3);
  const Rows<T> G(grad), Y(y), X(x), GX(grad_x);
  const double* s_p = scale.data_ptr<double>();
  const T* n_p = norm.data_ptr<T>();
  double* gs_p = grad_scale.data_ptr<double>();
  double* gg_p = grad_gamma.data_ptr<double>();
  parallel_row_blocks(B, H, T_, D, [&](int64_t b, int64_t h0, int64_t h1) {
    const int64_t nh = h1 - h0;
    std::vector<T> buf(2 * nh * D);  // per row: ∂L/∂u_t and ∂L/∂u_{t−1}, alternating by the parity of t
    std::vector<double> dscale(nh, 0.0), dgamma(nh, 0.0);
    for (int64_t t = 0; t < T_; ++t) {
      for (int64_t h = h0; h < h1; ++h) {
        const T s = static_cast<T>(s_p[h]);
        const T g = gamma_p ? static_cast<T>(gamma_p[h]) : T(1), g1 = T(1) - g;
        const T* nr = n_p + (b * H + h) * T_;
        T* gu = buf.data() + ((h - h0) * 2 + (t & 1)) * D;
        const T* gu_prev = buf.data() + ((h - h0) * 2 + ((t + 1) & 1)) * D;
        const T* gt = G.at(b, h, t);
        const T* yt = Y.at(b, h, t);
        if (t + kAhead < T_) {
          prefetch_row(G.at(b, h, t + kAhead), D);
          prefetch_row(Y.at(b, h, t + kAhead), D);
          if (gamma_p) prefetch_row(X.at(b, h, t + kAhead), D);
        }
        const T c = dot(yt, gt, D);
        const NormGrad<T> ng(nr[t], c, s);
        for (int64_t i = 0; i < D; ++i) gu[i] = ng.si * gt[i] - ng.proj * yt[i];
        dscale[h - h0] += static_cast<double>(c);
        T* gxt = GX.at(b, h, t);
        if (!gamma_p) {
          std::copy(gu, gu + D, gxt);
          continue;
        }
        const T* xt = X.at(b, h, t);
        T dg;
        if (t + 1 < T_) {
          const T* xn = X.at(b, h, t + 1);
          T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
          int64_t i = 0;
          for (; i + 8 <= D; i += 8)
            for (int j = 0; j < 8; ++j) acc[j] += gu[i + j] * (xt[i + j] - xn[i + j]);
          dg = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
          for (; i < D; ++i) dg += gu[i] * (xt[i] - xn[i]);
        } else {
          dg = dot(gu, xt, D);
        }
        dgamma[h - h0] += static_cast<double>(dg);
        if (t > 0) {
          for (int64_t i = 0; i < D; ++i) gxt[i] = g * gu[i] + g1 * gu_prev[i];
        } else {
          for (int64_t i = 0; i < D; ++i) gxt[i] = g * gu[i];
        }
      }
    }
    for (int64_t h = h0; h < h1; ++h) {
      gs_p[b * H + h] = dscale[h - h0] / s_p[h];
      gg_p[b * H + h] = dgamma[h - h0];
    }
  });
}

const double* gamma_data(const c10::optional<at::Tensor>& gamma, int64_t H) {
  if (!gamma.has_value()) return nullptr;
  check_per_head(*gamma, H, "gamma");
  return gamma->data_ptr<double>();
}

void value_path_forward(const at::Tensor& x, const at::Tensor& scale, const c10::optional<at::Tensor>& gamma,
                        const at::Tensor& out, const at::Tensor& norm) {
  check_rows(x, "x");
  check_same(out, x, "out");
  check_norm(norm, x, "norm");
  check_per_head(scale, x.size(1), "scale");
  const double* g = gamma_data(gamma, x.size(1));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "value_path_forward",
                             [&] { value_forward_rows<scalar_t>(x, scale, g, out, norm); });
}

void value_path_backward(const at::Tensor& grad, const at::Tensor& y, const at::Tensor& norm, const at::Tensor& x,
                         const at::Tensor& scale, const c10::optional<at::Tensor>& gamma, const at::Tensor& grad_x,
                         const at::Tensor& grad_scale, const at::Tensor& grad_gamma) {
  check_rows(y, "y");
  check_same(grad, y, "grad");
  check_same(x, y, "x");
  check_same(grad_x, y, "grad_x");
  check_norm(norm, y, "norm");
  check_per_head(scale, y.size(1), "scale");
  check_partials(grad_scale, y.size(0), y.size(1), "grad_scale");
  check_partials(grad_gamma, y.size(0), y.size(1), "grad_gamma");
  const double* g = gamma_data(gamma, y.size(1));
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "value_path_backward", [&] {
    value_backward_rows<scalar_t>(grad, y, norm, x, scale, g, grad_x, grad_scale, grad_gamma);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(memory_mosaics, CPU, m) {
  m.impl("value_path_forward", &value_path_forward);
  m.impl("value_path_backward", &value_path_backward);
}

}  // namespace memory_mosaics

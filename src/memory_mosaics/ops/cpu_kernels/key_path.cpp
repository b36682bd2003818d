// The key path (ops/key_path.py) in one pass per (b, h) row: the leaky average and the scaled normalisation.
//
//   forward:  k̄_t = x_t + λ k̄_{t-1},   n_t = ‖k̄_t‖,   k_t = s k̄_t / max(n_t, ε)
//   backward (t from T-1 down to 0), g = ∂L/∂k:
//     c_t = k_t·g_t                                   (= s k̂_t·g_t)
//     ∂L/∂k̄_t (local) = (s/m_t) g_t − [n_t ≥ ε] (c_t/(s m_t)) k_t,   m_t = max(n_t, ε)
//     a_t = local_t + λ a_{t+1}                      (= ∂L/∂x_t)
//     ∂L/∂λ += a_{t+1}·k̄_t,  k̄_t = k_t m_t/s  (read with k_t, before a_{t+1} is overwritten);  ∂L/∂s += c_t/s
// k̄ and a live in d_h-long buffers kept in double whatever the input dtype: both recurrences run T steps, and in
// float32 a head with λ near 1 (b = 1e-4, T 4,096) lost two digits against the chunked scan (2e-5 vs 2e-7 relative).
// The parameter gradients are summed per row in double and written per (b, h), so the caller's sum over b is
// deterministic whatever the thread count.
#include "common.h"

#include <vector>

namespace memory_mosaics {
namespace {

template <typename T>
void key_forward_rows(const at::Tensor& x, const at::Tensor& lam, const at::Tensor& scale, const at::Tensor& out,
                      const at::Tensor& norm) {
  const int64_t B = x.size(0), H = x.size(1), T_ = x.size(2), D = x.size(3);
  const Rows<T> X(x), K(out);
  const double* lam_p = lam.data_ptr<double>();
  const double* s_p = scale.data_ptr<double>();
  T* n_p = norm.data_ptr<T>();
  parallel_row_blocks(B, H, T_, D, [&](int64_t b, int64_t h0, int64_t h1) {
    std::vector<double> kbar((h1 - h0) * D, 0.0);  // k̄_{t-1} of each row of the block
    for (int64_t t = 0; t < T_; ++t) {
      for (int64_t h = h0; h < h1; ++h) {
        const double l = lam_p[h], s = s_p[h];
        double* kb = kbar.data() + (h - h0) * D;
        const T* xt = X.at(b, h, t);
        for (int64_t i = 0; i < D; ++i) kb[i] = static_cast<double>(xt[i]) + l * kb[i];
        n_p[(b * H + h) * T_ + t] = static_cast<T>(scale_normalize(kb, K.at(b, h, t), s, D));
      }
    }
  });
}

// One step of the reverse scan: a ← si·g − proj·k + λ·a (∂L/∂x_t, also written to gx); returns a_{t+1}·k_t, read
// before a is overwritten. Eight partial sums; the restrict qualifiers let the compiler vectorise it.
template <typename T>
inline double reverse_step(double* __restrict a, T* __restrict gx, const T* __restrict g, const T* __restrict k,
                           double si, double proj, double l, int64_t D) {
  double dl[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= D; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const double old = a[i + j], kv = k[i + j];
      dl[j] += old * kv;
      const double v = si * static_cast<double>(g[i + j]) - proj * kv + l * old;
      a[i + j] = v;
      gx[i + j] = static_cast<T>(v);
    }
  }
  double d = ((dl[0] + dl[4]) + (dl[1] + dl[5])) + ((dl[2] + dl[6]) + (dl[3] + dl[7]));
  for (; i < D; ++i) {
    const double kv = k[i];
    d += a[i] * kv;
    a[i] = si * static_cast<double>(g[i]) - proj * kv + l * a[i];
    gx[i] = static_cast<T>(a[i]);
  }
  return d;
}

template <typename T>
void key_backward_rows(const at::Tensor& grad, const at::Tensor& k, const at::Tensor& norm, const at::Tensor& lam,
                       const at::Tensor& scale, const at::Tensor& grad_x, const at::Tensor& grad_lam,
                       const at::Tensor& grad_scale) {
  const int64_t B = k.size(0), H = k.size(1), T_ = k.size(2), D = k.size(3);
  const Rows<T> G(grad), K(k), GX(grad_x);
  const double* lam_p = lam.data_ptr<double>();
  const double* s_p = scale.data_ptr<double>();
  const T* n_p = norm.data_ptr<T>();
  double* gl_p = grad_lam.data_ptr<double>();
  double* gs_p = grad_scale.data_ptr<double>();
  parallel_row_blocks(B, H, T_, D, [&](int64_t b, int64_t h0, int64_t h1) {
    const int64_t nh = h1 - h0;
    std::vector<double> acc(nh * D, 0.0);  // a_{t+1} of each row of the block
    std::vector<double> dlam(nh, 0.0), dscale(nh, 0.0);
    for (int64_t t = T_ - 1; t >= 0; --t) {
      for (int64_t h = h0; h < h1; ++h) {
        const double l = lam_p[h], s = s_p[h];
        const T* nr = n_p + (b * H + h) * T_;
        double* a = acc.data() + (h - h0) * D;
        const T* gt = G.at(b, h, t);
        const T* kt = K.at(b, h, t);
        if (t >= kAhead) {  // the walk runs backwards in memory: fetch ahead by hand
          prefetch_row(G.at(b, h, t - kAhead), D);
          prefetch_row(K.at(b, h, t - kAhead), D);
        }
        const double c = static_cast<double>(dot(kt, gt, D));
        const NormGrad<double> ng(static_cast<double>(nr[t]), c, s);
        const double d = reverse_step(a, GX.at(b, h, t), gt, kt, ng.si, ng.proj, l, D);
        dscale[h - h0] += c;
        dlam[h - h0] += d * ng.m;  // a_{t+1}·k̄_t, k̄_t = k_t m_t / s
      }
    }
    for (int64_t h = h0; h < h1; ++h) {
      gl_p[b * H + h] = dlam[h - h0] / s_p[h];
      gs_p[b * H + h] = dscale[h - h0] / s_p[h];
    }
  });
}

void key_path_forward(const at::Tensor& x, const at::Tensor& lam, const at::Tensor& scale, const at::Tensor& out,
                      const at::Tensor& norm) {
  check_rows(x, "x");
  check_same(out, x, "out");
  check_norm(norm, x, "norm");
  check_per_head(lam, x.size(1), "lam");
  check_per_head(scale, x.size(1), "scale");
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "key_path_forward",
                             [&] { key_forward_rows<scalar_t>(x, lam, scale, out, norm); });
}

void key_path_backward(const at::Tensor& grad, const at::Tensor& k, const at::Tensor& norm, const at::Tensor& lam,
                       const at::Tensor& scale, const at::Tensor& grad_x, const at::Tensor& grad_lam,
                       const at::Tensor& grad_scale) {
  check_rows(k, "k");
  check_same(grad, k, "grad");
  check_same(grad_x, k, "grad_x");
  check_norm(norm, k, "norm");
  check_per_head(lam, k.size(1), "lam");
  check_per_head(scale, k.size(1), "scale");
  check_partials(grad_lam, k.size(0), k.size(1), "grad_lam");
  check_partials(grad_scale, k.size(0), k.size(1), "grad_scale");
  AT_DISPATCH_FLOATING_TYPES(k.scalar_type(), "key_path_backward", [&] {
    key_backward_rows<scalar_t>(grad, k, norm, lam, scale, grad_x, grad_lam, grad_scale);
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(memory_mosaics, CPU, m) {
  m.impl("key_path_forward", &key_path_forward);
  m.impl("key_path_backward", &key_path_backward);
}

}  // namespace memory_mosaics

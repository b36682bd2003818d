// Shared helpers of the extractor-path kernels: strided row views, short dot products, the 1e-12 floor.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace memory_mosaics {

constexpr double kEps = 1e-12;  // the normalisation floor: k = s·k̄ / max(‖k̄‖, 1e-12)

// A (B, H, T, D) tensor read through its strides; the last dim must be contiguous.
template <typename T>
struct Rows {
  T* data;
  int64_t sb, sh, st;
  explicit Rows(const at::Tensor& x)
      : data(x.data_ptr<T>()), sb(x.stride(0)), sh(x.stride(1)), st(x.stride(2)) {}
  T* at(int64_t b, int64_t h, int64_t t) const { return data + b * sb + h * sh + t * st; }
};

// Σ a_i b_i over a short vector (d_h), eight partial sums so the compiler vectorises it without -ffast-math.
template <typename T>
inline T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  T acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
  T s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

// out = s·u / max(‖u‖, ε), computed in u's type U and stored as T; returns ‖u‖ (the backward's saved norm).
template <typename U, typename T>
inline U scale_normalize(const U* __restrict u, T* __restrict out, U s, int64_t D) {
  const U n = std::sqrt(dot(u, u, D));
  const U f = s / std::max(n, static_cast<U>(kEps));
  for (int64_t i = 0; i < D; ++i) out[i] = static_cast<T>(u[i] * f);
  return n;
}

// The normalisation's backward at one position, ∂L/∂u = si·g − proj·y for y = s·u/m, m = max(n, ε), c = y·g:
// si = s/m, proj = c/(s m), and no projection term below the floor (there the norm is the constant ε).
template <typename T>
struct NormGrad {
  T m, si, proj;
  NormGrad(T n, T c, T s) {
    m = std::max(n, static_cast<T>(kEps));
    si = s / m;
    proj = n >= static_cast<T>(kEps) ? c / (s * m) : T(0);
  }
};

// Software prefetch kAhead steps of t ahead: the backward scans walk memory backwards (the key path) or read
// three or four streams at once (the value path), which the hardware prefetcher follows late. Per step at T 1,024
// (core case, one thread): key path backward ~4.8 -> ~3.7 ms, value path backward ~2.15 -> ~1.75 ms.
constexpr int64_t kAhead = 16;

template <typename T>
inline void prefetch_row(const T* p, int64_t D) {
#if defined(__GNUC__) || defined(__clang__)
  const char* c = reinterpret_cast<const char*>(p);
  for (int64_t i = 0; i < D * static_cast<int64_t>(sizeof(T)); i += 64) __builtin_prefetch(c + i);
#else
  (void)p;
  (void)D;
#endif
}

// Rows of B·H per parallel task: enough work per task that one short sequence does not pay a thread hand-off.
inline int64_t row_grain(int64_t T, int64_t D) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, T * D));
}

// fn(b, h0, h1) for blocks of rows (b, h0..h1-1) that together cover the B·H rows, in parallel. The kernels walk t in
// the outer loop and h in the inner one: in the (B, T, H, D) order of a projection, of its gradient and of the
// values, the H rows of one b are then read as one contiguous stream instead of H strided ones (measured 2x faster
// than row by row once the tensors no longer fit in L2).
template <typename F>
inline void parallel_row_blocks(int64_t B, int64_t H, int64_t T, int64_t D, const F& fn) {
  at::parallel_for(0, B * H, row_grain(T, D), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end;) {
      const int64_t b = r / H, h0 = r % H, h1 = std::min(H, h0 + (end - r));
      fn(b, h0, h1);
      r += h1 - h0;
    }
  });
}

inline void check_rows(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(x.dim() == 4, name, " must be (B, H, T, D), got ", x.dim(), " dims");
  TORCH_CHECK(x.size(3) <= 1 || x.stride(3) == 1, name, ": the last dim must be contiguous");
}

inline void check_same(const at::Tensor& a, const at::Tensor& ref, const char* name) {
  check_rows(a, name);
  TORCH_CHECK(a.sizes() == ref.sizes(), name, " has shape ", a.sizes(), ", expected ", ref.sizes());
  TORCH_CHECK(a.scalar_type() == ref.scalar_type(), name, " has dtype ", a.scalar_type(), ", expected ",
              ref.scalar_type());
}

// A per-(b, h) double buffer: (B, H) contiguous.
inline void check_partials(const at::Tensor& p, int64_t B, int64_t H, const char* name) {
  TORCH_CHECK(p.scalar_type() == at::kDouble && p.is_contiguous() && p.dim() == 2 && p.size(0) == B &&
                  p.size(1) == H,
              name, " must be a contiguous float64 (B, H) tensor");
}

inline void check_per_head(const at::Tensor& p, int64_t H, const char* name) {
  TORCH_CHECK(p.scalar_type() == at::kDouble && p.is_contiguous() && p.dim() == 1 && p.size(0) == H, name,
              " must be a contiguous float64 (H,) tensor");
}

// The saved norms ‖k̄‖ / ‖u‖: (B, H, T) of the input dtype, contiguous.
inline void check_norm(const at::Tensor& n, const at::Tensor& ref, const char* name) {
  TORCH_CHECK(n.scalar_type() == ref.scalar_type() && n.is_contiguous() && n.dim() == 3 &&
                  n.size(0) == ref.size(0) && n.size(1) == ref.size(1) && n.size(2) == ref.size(2),
              name, " must be a contiguous (B, H, T) tensor of the input's dtype");
}

}  // namespace memory_mosaics

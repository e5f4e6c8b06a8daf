// Fused per-step elementwise work of one HyperLSTM cell on CPU (float32 and float64).
//
// One call per cell and time step does the ~20 elementwise operations of Eq. 12-13: every row of n units
// is read and written once, while it sits in L1. The matmuls (W_h h, the z -> d maps for large N_z) stay
// in ATen (oneDNN/MKL); these kernels do what lies between them. The CUDA twins are `triton_cell.py`.
//
// Forward (`cell_forward`), Ha, Dai & Le, Eq. 12-13, per batch row b and gate k in (i, f, g, o):
//   pre_k = b0_k + β_k + d_h,k ⊙ p1_k + d_x,k ⊙ p2_k   main cell, d given (p1 = W_h h, p2 = W_x x)
//   pre_k = p1_k + p2_k                                  hyper cell, no d (biases are already in p1)
//   y_k   = LN(pre_k) · gain_k + shift_k                 per-gate layer norm (R8), shift incl. forget bias
//   c_t   = σ(y_f) ⊙ c_{t-1} + σ(y_i) ⊙ tanh(y_g) ⊙ m   m: recurrent-dropout mask (R6)
//   h_t   = σ(y_o) ⊙ tanh(LN(c_t))                      LN(c) on the output path only (R8)
// Backward (`cell_backward`) is the exact gradient of the same expressions; see the time loops that call
// both (`fused_loops.py`) for the buffers.

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/cpu/vec/vec.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>
#include <memory>
#include <optional>
#include <type_traits>
#include <vector>

namespace {

using at::Tensor;
using at::vec::Vectorized;
using OptTensor = std::optional<Tensor>;

constexpr int64_t kGates = 4;

// Rows of n contiguous values: (B, K, n), (B, n) or (n) views (a 1-d view is the same row for every b).
template <typename T>
struct Rows {
  T* p = nullptr;
  int64_t sb = 0, sk = 0;
  Rows() = default;
  explicit Rows(const Tensor& t) : p(t.data_ptr<T>()) {
    TORCH_CHECK(t.stride(-1) == 1 || t.size(-1) == 1, "hyperlstm_cell: rows must be contiguous along units");
    if (t.dim() == 3) {
      sb = t.stride(0);
      sk = t.stride(1);
    } else if (t.dim() == 2) {
      sb = t.stride(0);
    }
  }
  T* row(int64_t b, int64_t k = 0) const { return p + b * sb + k * sk; }
  explicit operator bool() const { return p != nullptr; }
};

// One value per (b, k): (B, K) or (B) views with any strides.
template <typename T>
struct Scalars {
  T* p = nullptr;
  int64_t s0 = 0, s1 = 0;
  Scalars() = default;
  explicit Scalars(const Tensor& t) : p(t.data_ptr<T>()), s0(t.stride(0)), s1(t.dim() > 1 ? t.stride(1) : 0) {}
  T& at(int64_t b, int64_t k = 0) const { return p[b * s0 + k * s1]; }
  explicit operator bool() const { return p != nullptr; }
};

template <typename T>
Rows<T> rows(const OptTensor& t) {
  return t.has_value() && t->defined() ? Rows<T>(*t) : Rows<T>();
}

template <typename T>
Scalars<T> scalars(const OptTensor& t) {
  return t.has_value() && t->defined() ? Scalars<T>(*t) : Scalars<T>();
}

// Vector helpers: `cnt` < the vector width only in a row's tail (lanes past cnt load as 0).
template <typename T>
inline Vectorized<T> ld(const T* p, int64_t cnt) {
  return cnt == Vectorized<T>::size() ? Vectorized<T>::loadu(p) : Vectorized<T>::loadu(p, cnt);
}

template <typename T>
inline void st(const Vectorized<T>& v, T* p, int64_t cnt) {
  if (cnt == Vectorized<T>::size()) {
    v.store(p);
  } else {
    v.store(p, cnt);
  }
}

// v with the lanes past cnt set to 0 (for sums over a row's tail).
template <typename T>
inline Vectorized<T> valid(const Vectorized<T>& v, int64_t cnt) {
  return cnt == Vectorized<T>::size() ? v : Vectorized<T>::set(Vectorized<T>(T(0)), v, cnt);
}

template <typename T, typename F>
inline void each(int64_t n, const F& f) {
  constexpr int64_t W = Vectorized<T>::size();
  int64_t i = 0;
  for (; i + W <= n; i += W) f(i, W);
  if (i < n) f(i, n - i);
}

template <typename T>
inline T total(const Vectorized<T>& v) {
  __at_align__ T buf[Vectorized<T>::size()];
  v.store(buf);
  T s = 0;
  for (int64_t j = 0; j < Vectorized<T>::size(); ++j) s += buf[j];
  return s;
}

template <typename T>
inline Vectorized<T> sigmoid(const Vectorized<T>& x) {
  const Vectorized<T> one(T(1));
  return one / (one + x.neg().exp());
}

// tanh(x) = 1 - 2 / (1 + e^{2x}): one exp, ~5x cheaper than Sleef's tanh; absolute error ~1 ulp of 1.
template <typename T>
inline Vectorized<T> tanh_(const Vectorized<T>& x) {
  const Vectorized<T> one(T(1)), two(T(2));
  return one - two / (one + (x + x).exp());
}

// Gate k's nonlinearity: tanh for the candidate g (k = 2), σ otherwise (Eq. 13).
template <typename T>
inline Vectorized<T> activate(const Vectorized<T>& x, int64_t k) {
  return k == 2 ? tanh_(x) : sigmoid(x);
}

// Mean and 1/sqrt(var + eps) of a row (two passes; the row is in L1).
template <typename T>
inline std::pair<T, T> moments(const T* x, int64_t n, T eps) {
  using V = Vectorized<T>;
  V s(T(0));
  each<T>(n, [&](int64_t i, int64_t c) { s = s + ld(x + i, c); });
  const T mean = total(s) / T(n);
  V q(T(0));
  each<T>(n, [&](int64_t i, int64_t c) {
    const V d = valid(ld(x + i, c) - V(mean), c);
    q = q + d * d;
  });
  return {mean, T(1) / std::sqrt(total(q) / T(n) + eps)};
}

// d_h, d_x, β of gate k at units [i, i + cnt) of batch row b (Eq. 12): loaded from D (B, 12, n), or,
// for small N_z, computed here from z (B, 12, N_z) and W_d (12, N_z, n) (rows 0-3 d_h, 4-7 d_x, 8-11 β).
// NZ: N_z known at compile time (see with_nz), 0 where it is read from `nz` at run time.
template <typename T>
struct Scales {
  Rows<T> D, Z, WD;
  int64_t nz = 0;
  explicit operator bool() const { return D || Z; }
  template <int NZ = 0>
  inline void at(int64_t b, int64_t k, int64_t i, int64_t c, Vectorized<T>& dh, Vectorized<T>& dx,
                 Vectorized<T>& beta) const {
    using V = Vectorized<T>;
    if (D) {
      dh = ld(D.row(b, k) + i, c);
      dx = ld(D.row(b, kGates + k) + i, c);
      beta = ld(D.row(b, 2 * kGates + k) + i, c);
      return;
    }
    const T *zh = Z.row(b, k), *zx = Z.row(b, kGates + k), *zb = Z.row(b, 2 * kGates + k);
    dh = dx = beta = V(T(0));
    for (int64_t j = 0; j < (NZ ? NZ : nz); ++j) {
      dh = at::vec::fmadd(V(zh[j]), ld(WD.row(k, j) + i, c), dh);
      dx = at::vec::fmadd(V(zx[j]), ld(WD.row(kGates + k, j) + i, c), dx);
      beta = at::vec::fmadd(V(zb[j]), ld(WD.row(2 * kGates + k, j) + i, c), beta);
    }
  }
};

template <typename T>
Scales<T> scales(const OptTensor& d, const OptTensor& z, const OptTensor& w_d) {
  Scales<T> s;
  s.D = rows<T>(d);
  s.Z = rows<T>(z);
  s.WD = rows<T>(w_d);
  TORCH_CHECK(!s.Z || s.WD, "hyperlstm_cell: z needs w_d");
  s.nz = s.Z ? z->size(2) : 0;
  return s;
}

// f(std::integral_constant<int, NZ>()) with NZ = nz for the N_z of the paper's models (4 for PTB, 16 for
// the large-embedding rows and handwriting), so that the compiler unrolls the z loops and keeps their
// accumulators in registers; NZ = 0 (N_z read at run time) for any other N_z, and where d is given.
template <typename F>
inline void with_nz(int64_t nz, const F& f) {
  switch (nz) {
    case 4:
      return f(std::integral_constant<int, 4>());
    case 16:
      return f(std::integral_constant<int, 16>());
    default:
      return f(std::integral_constant<int, 0>());
  }
}

// Batch rows per task of at::parallel_for (built with -fopenmp; libgomp.so.1 resolves to torch's copy).
int64_t grain_for(int64_t n) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, kGates * n)); }

template <typename T>
void forward_impl(const Tensor& p1, const OptTensor& p2, const OptTensor& d, const OptTensor& z,
                  const OptTensor& w_d, const OptTensor& d_bias, const Tensor& c_prev, const OptTensor& mask, const OptTensor& gate_w, const OptTensor& gate_b,
                  const OptTensor& cell_w, const OptTensor& cell_b, double eps_, const Tensor& act,
                  const OptTensor& xhat, const OptTensor& rstd, const Tensor& c_out, const OptTensor& c_mean,
                  const OptTensor& c_rstd, const Tensor& tc, const Tensor& h_out) {
  using V = Vectorized<T>;
  const int64_t B = c_prev.size(0), n = c_prev.size(1);
  const Rows<T> P1(p1), P2 = rows<T>(p2), DB = rows<T>(d_bias), CP(c_prev), M = rows<T>(mask);
  const Scales<T> D = scales<T>(d, z, w_d);
  const Rows<T> GW = rows<T>(gate_w), GB = rows<T>(gate_b), CW = rows<T>(cell_w), CB = rows<T>(cell_b);
  const Rows<T> A(act), XH = rows<T>(xhat), C(c_out), TC(tc), H(h_out);
  const Scalars<T> RS = scalars<T>(rstd), CM = scalars<T>(c_mean), CR = scalars<T>(c_rstd);
  const bool gate_ln = static_cast<bool>(GW), cell_ln = static_cast<bool>(CW);
  TORCH_CHECK(!gate_ln || (XH && RS && GB), "cell_forward: gate layer norm needs xhat, rstd and the shift");
  TORCH_CHECK(!cell_ln || (CB && CM && CR), "cell_forward: LN(c) needs the shift, c_mean and c_rstd");
  TORCH_CHECK(!D || DB, "cell_forward: d needs d_bias");
  const T eps = static_cast<T>(eps_);
  with_nz(D.Z ? D.nz : 0, [&](auto nz_constant) {
    constexpr int NZ = decltype(nz_constant)::value;
    at::parallel_for(0, B, grain_for(n), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        for (int64_t k = 0; k < kGates; ++k) {
          T* a = A.row(b, k);
          const T* x1 = P1.row(b, k);
          const T* x2 = P2 ? P2.row(b, k) : nullptr;
          const T* b0_ = D ? DB.row(k) : nullptr;
          const auto pre_at = [&](int64_t i, int64_t c) {
            if (D) {  // Eq. 12
              V dh, dx, beta;
              D.template at<NZ>(b, k, i, c, dh, dx, beta);
              return ld(b0_ + i, c) + beta + dh * ld(x1 + i, c) + dx * ld(x2 + i, c);
            }
            const V v = ld(x1 + i, c);
            return x2 ? v + ld(x2 + i, c) : v;
          };
          if (gate_ln) {
            T* pre = XH.row(b, k);  // the pre-activation, normalised in place
            each<T>(n, [&](int64_t i, int64_t c) { st(pre_at(i, c), pre + i, c); });
            const auto [mean, r] = moments(static_cast<const T*>(pre), n, eps);
            RS.at(b, k) = r;
            const T *w = GW.row(k), *s = GB.row(k);
            each<T>(n, [&](int64_t i, int64_t c) {
              const V xh = (ld(pre + i, c) - V(mean)) * V(r);
              st(xh, pre + i, c);
              st(activate(xh * ld(w + i, c) + ld(s + i, c), k), a + i, c);
            });
          } else {
            each<T>(n, [&](int64_t i, int64_t c) { st(activate(pre_at(i, c), k), a + i, c); });
          }
        }
        const T *ai = A.row(b, 0), *af = A.row(b, 1), *ag = A.row(b, 2), *ao = A.row(b, 3), *cp = CP.row(b);
        const T* m = M ? M.row(b) : nullptr;
        T *cn = C.row(b), *tcr = TC.row(b), *h = H.row(b);
        const auto cell_at = [&](int64_t i, int64_t c) {  // Eq. 13
          V g = ld(ag + i, c);
          if (m) g = g * ld(m + i, c);
          return ld(af + i, c) * ld(cp + i, c) + ld(ai + i, c) * g;
        };
        if (!cell_ln) {  // one pass: c_t, tanh(c_t), h_t
          each<T>(n, [&](int64_t i, int64_t c) {
            const V cv = cell_at(i, c), t = tanh_(cv);
            st(cv, cn + i, c);
            st(t, tcr + i, c);
            st(ld(ao + i, c) * t, h + i, c);
          });
          continue;
        }
        each<T>(n, [&](int64_t i, int64_t c) { st(cell_at(i, c), cn + i, c); });
        const auto [mean, r] = moments(static_cast<const T*>(cn), n, eps);  // LN(c_t), output path only (R8)
        CM.at(b) = mean;
        CR.at(b) = r;
        const T *w = CW.row(b), *s = CB.row(b);
        each<T>(n, [&](int64_t i, int64_t c) {
          const V t = tanh_((ld(cn + i, c) - V(mean)) * V(r) * ld(w + i, c) + ld(s + i, c));
          st(t, tcr + i, c);
          st(ld(ao + i, c) * t, h + i, c);
        });
      }
    });
  });
}

// Per-thread sums over batch rows: gate gain/shift (4n each), LN(c) gain/shift (n each), β (4n).
template <typename T>
struct Sums {
  int64_t n;
  std::vector<T> v;
  explicit Sums(int64_t n_) : n(n_), v(14 * n_, T(0)) {}
  T* gate_dw(int64_t k) { return v.data() + k * n; }
  T* gate_db(int64_t k) { return v.data() + (kGates + k) * n; }
  T* cell_dw(int64_t = 0) { return v.data() + 2 * kGates * n; }
  T* cell_db(int64_t = 0) { return v.data() + (2 * kGates + 1) * n; }
  T* d_beta(int64_t k) { return v.data() + (2 * kGates + 2 + k) * n; }
};

template <typename T>
inline void acc(T* dst, const Vectorized<T>& v, int64_t i, int64_t c) {
  st(ld(dst + i, c) + v, dst + i, c);
}

template <typename T>
void add_into(const OptTensor& dst, const std::vector<Sums<T>*>& parts, T* (Sums<T>::*slot)(int64_t), int64_t k) {
  if (!dst.has_value() || !dst->defined()) return;
  T* out = dst->data_ptr<T>() + k * parts.front()->n;
  for (auto* part : parts) {
    const T* src = (part->*slot)(k);
    for (int64_t i = 0; i < part->n; ++i) out[i] += src[i];
  }
}

template <typename T>
void backward_impl(const Tensor& dh_in, const Tensor& dc_in, const Tensor& act, const Tensor& tc,
                   const Tensor& c_prev, const OptTensor& c_new, const OptTensor& c_mean, const OptTensor& c_rstd,
                   const OptTensor& mask, const OptTensor& xhat, const OptTensor& rstd, const OptTensor& gate_w,
                   const OptTensor& cell_w, const OptTensor& p1, const OptTensor& p2, const OptTensor& d,
                   const OptTensor& z, const OptTensor& w_d, const Tensor& dc_prev, const Tensor& dpre,
                   const OptTensor& dp1, const OptTensor& dp2, const OptTensor& e1, const OptTensor& e2,
                   const OptTensor& dz, const OptTensor& gate_dw, const OptTensor& gate_db, const OptTensor& cell_dw,
                   const OptTensor& cell_db, const OptTensor& d_beta) {
  using V = Vectorized<T>;
  const int64_t B = c_prev.size(0), n = c_prev.size(1);
  const Rows<T> DH(dh_in), DC(dc_in), A(act), TC(tc), CP(c_prev), CN = rows<T>(c_new), M = rows<T>(mask);
  const Rows<T> XH = rows<T>(xhat), GW = rows<T>(gate_w), CW = rows<T>(cell_w);
  const Rows<T> P1 = rows<T>(p1), P2 = rows<T>(p2), DZ = rows<T>(dz);
  const Scales<T> D = scales<T>(d, z, w_d);
  const Rows<T> DCP(dc_prev), DP(dpre), DP1 = rows<T>(dp1), DP2 = rows<T>(dp2), E1 = rows<T>(e1), E2 = rows<T>(e2);
  const Scalars<T> RS = scalars<T>(rstd), CM = scalars<T>(c_mean), CR = scalars<T>(c_rstd);
  const bool gate_ln = static_cast<bool>(GW), cell_ln = static_cast<bool>(CW);
  TORCH_CHECK(!gate_ln || (XH && RS), "cell_backward: gate layer norm needs xhat and rstd");
  TORCH_CHECK(!cell_ln || (CN && CM && CR), "cell_backward: LN(c) needs c_new, c_mean and c_rstd");
  TORCH_CHECK(!D || (P1 && P2 && DP1 && DP2 && E1 && E2), "cell_backward: d needs p1, p2 and their outputs");
  TORCH_CHECK(!D.Z || DZ, "cell_backward: z needs dz");
  TORCH_CHECK(D.nz <= 16, "cell_backward: N_z > 16 takes d, not z");
  const int nthreads = at::get_num_threads();
  std::vector<std::unique_ptr<Sums<T>>> sums(nthreads);
  const T inv_n = T(1) / T(n);
  with_nz(D.Z ? D.nz : 0, [&](auto nz_constant) {
    constexpr int NZ = decltype(nz_constant)::value;
    const int64_t nz = NZ ? NZ : D.nz;
    at::parallel_for(0, B, grain_for(n), [&](int64_t b0, int64_t b1) {
      auto& mine = sums[at::get_thread_num()];
      if (!mine) mine = std::make_unique<Sums<T>>(n);
      Sums<T>& S = *mine;
      for (int64_t b = b0; b < b1; ++b) {
        const T *ai = A.row(b, 0), *af = A.row(b, 1), *ag = A.row(b, 2), *ao = A.row(b, 3);
        const T *tcr = TC.row(b), *dh = DH.row(b), *dc = DC.row(b), *cp = CP.row(b);
        const T* m = M ? M.row(b) : nullptr;
        T* dcp = DCP.row(b);
        // h_t = o ⊙ tanh(u), u = LN(c_t) or c_t: gradient of u, and LN(c) backward sums
        T mean = 0, r = 1, s_g = 0, s_gc = 0;
        const T *w = cell_ln ? CW.row(b) : nullptr, *cnr = cell_ln ? CN.row(b) : nullptr;
        if (cell_ln) {
          mean = CM.at(b);
          r = CR.at(b);
          V sg(T(0)), sgc(T(0));
          each<T>(n, [&](int64_t i, int64_t c) {
            const V t = ld(tcr + i, c), du = ld(dh + i, c) * ld(ao + i, c) * (V(T(1)) - t * t);
            const V xc = valid((ld(cnr + i, c) - V(mean)) * V(r), c);
            acc(S.cell_dw(), du * xc, i, c);
            acc(S.cell_db(), du, i, c);
            const V g = du * ld(w + i, c);
            sg = sg + g;
            sgc = sgc + g * xc;
          });
          s_g = total(sg) * inv_n;
          s_gc = total(sgc) * inv_n;
        }
        T *yi = DP.row(b, 0), *yf = DP.row(b, 1), *yg = DP.row(b, 2), *yo = DP.row(b, 3);
        each<T>(n, [&](int64_t i, int64_t c) {
          const V one(T(1)), t = ld(tcr + i, c), o = ld(ao + i, c), dhv = ld(dh + i, c);
          V du = dhv * o * (one - t * t);
          if (cell_ln) {
            const V xc = (ld(cnr + i, c) - V(mean)) * V(r);
            du = V(r) * (du * ld(w + i, c) - V(s_g) - xc * V(s_gc));
          }
          const V dct = ld(dc + i, c) + du;  // Eq. 13 backward
          const V gi = ld(ai + i, c), gf = ld(af + i, c), gg = ld(ag + i, c);
          const V mv = m ? ld(m + i, c) : one;
          st(dct * gg * mv * gi * (one - gi), yi + i, c);
          st(dct * ld(cp + i, c) * gf * (one - gf), yf + i, c);
          st(dct * gi * mv * (one - gg * gg), yg + i, c);
          st(dhv * t * o * (one - o), yo + i, c);
          st(dct * gf, dcp + i, c);  // may alias dc: same element, read above
        });
        for (int64_t k = 0; k < kGates; ++k) {
          T* y = DP.row(b, k);
          if (gate_ln) {  // LN backward: dpre = rstd (g - mean g - x̂ mean(g x̂)), g = dy ⊙ gain
            const T *xh = XH.row(b, k), *gw = GW.row(k);
            V sg(T(0)), sgx(T(0));
            each<T>(n, [&](int64_t i, int64_t c) {
              const V dy = ld(y + i, c), x = ld(xh + i, c), g = dy * ld(gw + i, c);
              acc(S.gate_dw(k), dy * x, i, c);
              acc(S.gate_db(k), dy, i, c);
              sg = sg + g;
              sgx = sgx + g * x;
            });
            const T mg = total(sg) * inv_n, mgx = total(sgx) * inv_n, rk = RS.at(b, k);
            each<T>(n, [&](int64_t i, int64_t c) {
              const V g = ld(y + i, c) * ld(gw + i, c);
              st(V(rk) * (g - V(mg) - ld(xh + i, c) * V(mgx)), y + i, c);
            });
          }
          if (D) {  // Eq. 12 backward: the gradients of W_h h, W_x x, d_h, d_x and β (= dpre)
            const T *x1 = P1.row(b, k), *x2 = P2.row(b, k);
            T *g1 = DP1.row(b, k), *g2 = DP2.row(b, k), *f1 = E1.row(b, k), *f2 = E2.row(b, k);
            V adh[NZ ? NZ : 16], adx[NZ ? NZ : 16], adb[NZ ? NZ : 16];  // dz = e · W_dᵀ per unit row (z given)
            for (int64_t j = 0; j < nz; ++j) adh[j] = adx[j] = adb[j] = V(T(0));
            each<T>(n, [&](int64_t i, int64_t c) {
              const V dp = ld(y + i, c), e1v = dp * ld(x1 + i, c), e2v = dp * ld(x2 + i, c);
              V dh, dx, beta;
              D.template at<NZ>(b, k, i, c, dh, dx, beta);
              st(dp * dh, g1 + i, c);
              st(dp * dx, g2 + i, c);
              st(e1v, f1 + i, c);
              st(e2v, f2 + i, c);
              acc(S.d_beta(k), dp, i, c);
              for (int64_t j = 0; j < nz; ++j) {
                adh[j] = at::vec::fmadd(e1v, ld(D.WD.row(k, j) + i, c), adh[j]);
                adx[j] = at::vec::fmadd(e2v, ld(D.WD.row(kGates + k, j) + i, c), adx[j]);
                adb[j] = at::vec::fmadd(dp, ld(D.WD.row(2 * kGates + k, j) + i, c), adb[j]);
              }
            });
            for (int64_t j = 0; j < nz; ++j) {
              DZ.row(b, k)[j] = total(adh[j]);
              DZ.row(b, kGates + k)[j] = total(adx[j]);
              DZ.row(b, 2 * kGates + k)[j] = total(adb[j]);
            }
          }
        }
      }
    });
  });
  std::vector<Sums<T>*> parts;
  for (auto& s : sums)
    if (s) parts.push_back(s.get());
  if (parts.empty()) return;
  for (int64_t k = 0; k < kGates; ++k) {
    add_into<T>(gate_dw, parts, &Sums<T>::gate_dw, k);
    add_into<T>(gate_db, parts, &Sums<T>::gate_db, k);
    add_into<T>(d_beta, parts, &Sums<T>::d_beta, k);
  }
  add_into<T>(cell_dw, parts, &Sums<T>::cell_dw, 0);
  add_into<T>(cell_db, parts, &Sums<T>::cell_db, 0);
}

void cell_forward(const Tensor& p1, const OptTensor& p2, const OptTensor& d, const OptTensor& z,
                  const OptTensor& w_d, const OptTensor& d_bias, const Tensor& c_prev, const OptTensor& mask, const OptTensor& gate_w, const OptTensor& gate_b,
                  const OptTensor& cell_w, const OptTensor& cell_b, double eps, const Tensor& act,
                  const OptTensor& xhat, const OptTensor& rstd, const Tensor& c_out, const OptTensor& c_mean,
                  const OptTensor& c_rstd, const Tensor& tc, const Tensor& h_out) {
  TORCH_CHECK(c_prev.device().is_cpu(), "cell_forward: CPU tensors only");
  if (c_prev.scalar_type() == at::kFloat) {
    forward_impl<float>(p1, p2, d, z, w_d, d_bias, c_prev, mask, gate_w, gate_b, cell_w, cell_b, eps, act, xhat, rstd,
                        c_out, c_mean, c_rstd, tc, h_out);
  } else if (c_prev.scalar_type() == at::kDouble) {
    forward_impl<double>(p1, p2, d, z, w_d, d_bias, c_prev, mask, gate_w, gate_b, cell_w, cell_b, eps, act, xhat, rstd,
                         c_out, c_mean, c_rstd, tc, h_out);
  } else {
    TORCH_CHECK(false, "cell_forward: float32 or float64 only, got ", c_prev.scalar_type());
  }
}

void cell_backward(const Tensor& dh, const Tensor& dc, const Tensor& act, const Tensor& tc, const Tensor& c_prev,
                   const OptTensor& c_new, const OptTensor& c_mean, const OptTensor& c_rstd, const OptTensor& mask,
                   const OptTensor& xhat, const OptTensor& rstd, const OptTensor& gate_w, const OptTensor& cell_w,
                   const OptTensor& p1, const OptTensor& p2, const OptTensor& d, const OptTensor& z,
                   const OptTensor& w_d, const Tensor& dc_prev, const Tensor& dpre, const OptTensor& dp1,
                   const OptTensor& dp2, const OptTensor& e1, const OptTensor& e2, const OptTensor& dz,
                   const OptTensor& gate_dw, const OptTensor& gate_db, const OptTensor& cell_dw,
                   const OptTensor& cell_db, const OptTensor& d_beta) {
  TORCH_CHECK(c_prev.device().is_cpu(), "cell_backward: CPU tensors only");
  if (c_prev.scalar_type() == at::kFloat) {
    backward_impl<float>(dh, dc, act, tc, c_prev, c_new, c_mean, c_rstd, mask, xhat, rstd, gate_w, cell_w, p1, p2,
                         d, z, w_d, dc_prev, dpre, dp1, dp2, e1, e2, dz, gate_dw, gate_db, cell_dw, cell_db,
                         d_beta);
  } else if (c_prev.scalar_type() == at::kDouble) {
    backward_impl<double>(dh, dc, act, tc, c_prev, c_new, c_mean, c_rstd, mask, xhat, rstd, gate_w, cell_w, p1, p2,
                          d, z, w_d, dc_prev, dpre, dp1, dp2, e1, e2, dz, gate_dw, gate_db, cell_dw, cell_db,
                          d_beta);
  } else {
    TORCH_CHECK(false, "cell_backward: float32 or float64 only, got ", c_prev.scalar_type());
  }
}

}  // namespace

// Outputs are written in place (out-style); the Python caller owns every buffer.
TORCH_LIBRARY(hyperfairseq, m) {
  m.def(
      "cell_forward(Tensor p1, Tensor? p2, Tensor? d, Tensor? z, Tensor? w_d, Tensor? d_bias, Tensor c_prev, Tensor? mask, "
      "Tensor? gate_w, Tensor? gate_b, Tensor? cell_w, Tensor? cell_b, float eps, Tensor(a!) act, "
      "Tensor(b!)? xhat, Tensor(c!)? rstd, Tensor(d!) c_out, Tensor(e!)? c_mean, Tensor(f!)? c_rstd, "
      "Tensor(g!) tc, Tensor(h!) h_out) -> ()");
  m.def(
      "cell_backward(Tensor dh, Tensor dc, Tensor act, Tensor tc, Tensor c_prev, Tensor? c_new, Tensor? c_mean, "
      "Tensor? c_rstd, Tensor? mask, Tensor? xhat, Tensor? rstd, Tensor? gate_w, Tensor? cell_w, Tensor? p1, "
      "Tensor? p2, Tensor? d, Tensor? z, Tensor? w_d, Tensor(a!) dc_prev, Tensor(b!) dpre, Tensor(c!)? dp1, "
      "Tensor(d!)? dp2, Tensor(e!)? e1, Tensor(f!)? e2, Tensor(l!)? dz, Tensor(g!)? gate_dw, Tensor(h!)? gate_db, Tensor(i!)? cell_dw, "
      "Tensor(j!)? cell_db, Tensor(k!)? d_beta) -> ()");
}

TORCH_LIBRARY_IMPL(hyperfairseq, CPU, m) {
  m.impl("cell_forward", cell_forward);
  m.impl("cell_backward", cell_backward);
}

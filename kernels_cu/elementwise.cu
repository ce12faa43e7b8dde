/* Elementwise kernels over strided views: fill, copy (with dtype conversion), the online
 * softmax merge, and the gathers/scatters between views and dense f32 workspaces that the
 * cuBLAS-based (NAIVE and backward) attention paths use. Parallel to kernels_cl/elementwise.cl. */
#include "common.cuh"

#define THREADS 256

/* Decompose a flat index over (nb, ns, nh, n, d) of view v. */
__device__ __forceinline__ int64_t view_elem(const pcu_view &v, int64_t idx) {
  int64_t j = idx % v.d; idx /= v.d;
  int64_t i = idx % v.n; idx /= v.n;
  int64_t ih = idx % v.nh; idx /= v.nh;
  int64_t is = idx % v.ns;
  int64_t ib = idx / v.ns;
  return pcu_row(v, ib, is, ih, i) + j;
}

__global__ void k_copy_flat(void *dst, int ddt, int64_t doff, const void *src, int sdt, int64_t soff, float alpha,
                            int64_t total) {
  PCU_FOR(idx, total) {
    float x = pcu_load(src, sdt, soff + idx);
    pcu_store(dst, ddt, doff + idx, alpha == 1.0f ? x : alpha * x);
  }
}

__global__ void k_fill(pcu_view dst, float value, int64_t total) {
  PCU_FOR(idx, total) pcu_store(dst.buf, dst.dtype, view_elem(dst, idx), value);
}

__global__ void k_copy(pcu_view dst, pcu_view src, float alpha, int64_t total) {
  PCU_FOR(idx, total) {
    float x = pcu_load(src.buf, src.dtype, view_elem(src, idx));
    pcu_store(dst.buf, dst.dtype, view_elem(dst, idx), alpha == 1.0f ? x : alpha * x);
  }
}

/* One thread per (row, column): the row's two lse values give the weights; only column 0
 * writes the new lse, after every thread of the row has read the old one. To avoid that
 * race the lse update is a separate pass (k_merge_lse) launched after this one. */
__global__ void k_merge_out(pcu_view ao, pcu_view al, pcu_view po, pcu_view pl, int64_t total) {
  PCU_FOR(idx, total) {
    int64_t t = idx / ao.d;
    int64_t i = t % ao.n; t /= ao.n;
    int64_t ih = t % ao.nh; t /= ao.nh;
    int64_t is = t % ao.ns, ib = t / ao.ns;
    float la = pcu_load(al.buf, al.dtype, pcu_row(al, ib, is, ih, i));
    float lp = pcu_load(pl.buf, pl.dtype, pcu_row(pl, ib, is, ih, i));
    int64_t ea = view_elem(ao, idx), ep = view_elem(po, idx);
    float r;
    if (lp == -PCU_INF) {
      if (la != -PCU_INF) continue; /* nothing to add */
      r = 0.0f;                     /* both empty: acc_out = 0 */
    } else if (la == -PCU_INF) {
      r = pcu_load(po.buf, po.dtype, ep);
    } else {
      float m = fmaxf(la, lp);
      float wa = expf(la - m), wp = expf(lp - m), sum = wa + wp;
      r = pcu_load(ao.buf, ao.dtype, ea) * (wa / sum) + pcu_load(po.buf, po.dtype, ep) * (wp / sum);
    }
    pcu_store(ao.buf, ao.dtype, ea, r);
  }
}

__global__ void k_merge_lse(pcu_view al, pcu_view pl, int64_t total) {
  PCU_FOR(idx, total) {
    int64_t ea = view_elem(al, idx), ep = view_elem(pl, idx);
    float la = pcu_load(al.buf, al.dtype, ea), lp = pcu_load(pl.buf, pl.dtype, ep);
    float r;
    if (lp == -PCU_INF) r = la;
    else if (la == -PCU_INF) r = lp;
    else { float m = fmaxf(la, lp); r = m + log1pf(expf(fminf(la, lp) - m)); }
    pcu_store(al.buf, al.dtype, ea, r);
  }
}

/* One thread per (row, column) of out: the S partial results of a row (dense f32, copy s of
 * po at s * rows * d, of pl at s * rows), each normalised over its own keys with log-sum-exp
 * pl, weighted by exp(pl_s - lse) where lse = log sum_s exp(pl_s); a row no split saw (every
 * pl_s = -inf) gets 0 and lse -inf, as the unsplit kernel gives. Column 0 writes lse. */
__global__ void k_split_combine(pcu_view out, pcu_view lse, const float *po, const float *pl, int S, float out_scale,
                                int64_t rows, int64_t total) {
  PCU_FOR(idx, total) {
    const int64_t r = idx / out.d, j = idx % out.d;
    float m = -PCU_INF;
    for (int sp = 0; sp < S; sp++) m = fmaxf(m, pl[sp * rows + r]);
    float sum = 0.0f, acc = 0.0f;
    if (m != -PCU_INF)
      for (int sp = 0; sp < S; sp++) {
        const float w = expf(pl[sp * rows + r] - m);
        sum += w;
        acc += w * po[(sp * rows + r) * out.d + j];
      }
    pcu_store(out.buf, out.dtype, view_elem(out, idx), m == -PCU_INF ? 0.0f : out_scale * acc / sum);
    if (j == 0 && lse.buf) pcu_store(lse.buf, lse.dtype, view_elem(lse, r), m == -PCU_INF ? -PCU_INF : m + logf(sum));
  }
}

__global__ void k_gather(float *dst, pcu_view src, int64_t u0, int64_t H, int64_t group, int64_t total) {
  PCU_FOR(idx, total) {
    int64_t t = idx;
    int64_t j = t % src.d; t /= src.d;
    int64_t i = t % src.n; t /= src.n;
    int64_t ih = t % H; t /= H;
    int64_t u = u0 + t;
    int64_t is = u % src.ns, ib = u / src.ns;
    dst[idx] = pcu_load(src.buf, src.dtype, pcu_row(src, ib, is, ih / group, i) + j);
  }
}

__global__ void k_scatter(pcu_view dst, const float *src, int64_t u0, int64_t group, float alpha, int64_t total) {
  PCU_FOR(idx, total) {
    int64_t t = idx;
    int64_t j = t % dst.d; t /= dst.d;
    int64_t i = t % dst.n; t /= dst.n;
    int64_t kh = t % dst.nh; t /= dst.nh;
    int64_t u = u0 + t;
    int64_t is = u % dst.ns, ib = u / dst.ns;
    float acc = 0.0f;
    for (int64_t g = 0; g < group; g++)
      acc += src[(((t * dst.nh + kh) * group + g) * dst.n + i) * dst.d + j];
    pcu_store(dst.buf, dst.dtype, pcu_row(dst, ib, is, kh, i) + j, alpha * acc);
  }
}

/* One warp per row. */
__global__ void k_rowdot(float *D, pcu_view a, pcu_view b, int64_t u0, int64_t rows) {
  int lane = threadIdx.x & 31;
  for (int64_t r = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows;
       r += ((int64_t)gridDim.x * blockDim.x) >> 5) {
    int64_t t = r;
    int64_t i = t % a.n; t /= a.n;
    int64_t ih = t % a.nh; t /= a.nh;
    int64_t u = u0 + t;
    int64_t is = u % a.ns, ib = u / a.ns;
    int64_t ra = pcu_row(a, ib, is, ih, i), rb = pcu_row(b, ib, is, ih, i);
    float s = 0.0f;
    for (int64_t c = lane; c < a.d; c += 32) s += pcu_load(a.buf, a.dtype, ra + c) * pcu_load(b.buf, b.dtype, rb + c);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) D[r] = s;
  }
}

__global__ void k_bias_store(int64_t n, const float *src, pcu_mat bias, pcu_mat y, int64_t total) {
  PCU_FOR(idx, total) {
    float x = src[idx];
    if (bias.buf) x += pcu_load(bias.buf, bias.dtype, bias.offset + idx % n);
    pcu_store(y.buf, y.dtype, y.offset + idx, x);
  }
}

#ifndef __CUDACC_RTC__ /* host side: launchers (common.cuh, "Under NVRTC") */
static inline int64_t view_count(const pcu_view &v) { return v.nb * v.ns * v.nh * v.n * v.d; }

/* Dense views (row-major, no gaps) are flat arrays: no index decomposition. */
static bool view_dense(const pcu_view &v) {
  return (v.n <= 1 || v.sn == v.d) && (v.nh <= 1 || v.sh == v.n * v.d) && (v.ns <= 1 || v.ss == v.nh * v.n * v.d) &&
         (v.nb <= 1 || v.sb == v.ns * v.nh * v.n * v.d);
}

extern "C" int pcu_fill(cudaStream_t s, pcu_view dst, float value) {
  int64_t total = view_count(dst);
  if (total <= 0) return 0;
  k_fill<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst, value, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_copy(cudaStream_t s, pcu_view dst, pcu_view src, float alpha) {
  int64_t total = view_count(dst);
  if (total <= 0) return 0;
  if (view_dense(dst) && view_dense(src))
    k_copy_flat<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst.buf, dst.dtype, dst.offset, src.buf, src.dtype,
                                                                src.offset, alpha, total);
  else
    k_copy<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst, src, alpha, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_split_combine(cudaStream_t s, pcu_view out, pcu_view lse, const float *po, const float *pl, int S,
                                 float out_scale) {
  const int64_t total = view_count(out), rows = out.nb * out.ns * out.nh * out.n;
  if (total <= 0) return 0;
  k_split_combine<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(out, lse, po, pl, S, out_scale, rows, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_merge(cudaStream_t s, pcu_view ao, pcu_view al, pcu_view po, pcu_view pl) {
  int64_t total = view_count(ao), rows = view_count(al);
  if (rows <= 0) return 0;
  if (total > 0) k_merge_out<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(ao, al, po, pl, total);
  k_merge_lse<<<pcu_blocks(rows, THREADS), THREADS, 0, s>>>(al, pl, rows);
  return (int)cudaGetLastError();
}

extern "C" int pcu_gather(cudaStream_t s, float *dst, pcu_view src, int64_t u0, int64_t nu, int64_t H, int64_t group) {
  int64_t total = nu * H * src.n * src.d;
  if (total <= 0) return 0;
  k_gather<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst, src, u0, H, group, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_scatter(cudaStream_t s, pcu_view dst, const float *src, int64_t u0, int64_t nu, int64_t group, float alpha) {
  int64_t total = nu * dst.nh * dst.n * dst.d;
  if (total <= 0) return 0;
  k_scatter<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst, src, u0, group, alpha, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_rowdot(cudaStream_t s, float *D, pcu_view a, pcu_view b, int64_t u0, int64_t nu) {
  int64_t rows = nu * a.nh * a.n;
  if (rows <= 0) return 0;
  k_rowdot<<<pcu_blocks(rows * 32, THREADS), THREADS, 0, s>>>(D, a, b, u0, rows);
  return (int)cudaGetLastError();
}

extern "C" int pcu_bias_store(cudaStream_t s, int64_t m, int64_t n, const float *src, pcu_mat bias, pcu_mat y) {
  int64_t total = m * n;
  if (total <= 0) return 0;
  k_bias_store<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(n, src, bias, y, total);
  return (int)cudaGetLastError();
}
#endif /* !__CUDACC_RTC__ */

/* Elementwise kernels over strided views: fill, copy (with dtype conversion), the online
 * softmax merge, and the gathers/scatters between views and dense f32 workspaces that the
 * cuBLAS-based (NAIVE and backward) attention paths use. Parallel to kernels_cl/elementwise.cl,
 * except for the scaled f16 copies of the TF32 forward on Hopper (pcu_f16_tiles). */
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

/* The views, copies and tile heights of pcu_f16_tiles, by value. */
struct pcu_f16_job {
  pcu_view v[3];
  uint16_t *dst[3];
  int rows[3];
  int64_t tiles[3], chunks[3]; /* tiles a unit; units times tiles */
  int64_t qpad;                /* q's exponents, rounded up to even */
};
/* Tile c of a pcu_f16_job (the tiles of the three views in turn): view t, its index cc
 * among t's tiles, the unit u, rows r0 .. rend - 1, and the unit's first f32 and f16 element.
 * Every thread of a block works this out, so it is 32-bit arithmetic (pcu_f16_tiles checks
 * that the counts fit): with int64 divisions the copies issued 2.75M instructions at b=1 h=12
 * n=512 d=128, without them 1.90M (ncu, H200). */
struct pcu_f16_tile {
  int t;
  uint32_t cc;
  int64_t r0, rend;
  const float *src;
  __half *out;
};
__device__ __forceinline__ pcu_f16_tile f16_tile_of(const pcu_f16_job &job, uint32_t c) {
  pcu_f16_tile x;
  const uint32_t c0 = (uint32_t)job.chunks[0], c1 = (uint32_t)job.chunks[1];
  x.t = c < c0 ? 0 : c < c0 + c1 ? 1 : 2;
  const pcu_view &v = job.v[x.t];
  x.cc = c - (x.t > 0 ? c0 : 0) - (x.t > 1 ? c1 : 0);
  const uint32_t tiles = (uint32_t)job.tiles[x.t], nh = (uint32_t)v.nh, ns = (uint32_t)v.ns;
  const uint32_t u = x.cc / tiles, uh = u / nh;
  x.r0 = (int64_t)(x.cc - u * tiles) * job.rows[x.t];
  x.rend = x.r0 + job.rows[x.t] < v.n ? x.r0 + job.rows[x.t] : v.n;
  x.src = (const float *)v.buf + pcu_row(v, uh / ns, uh % ns, u - uh * nh, 0);
  x.out = (__half *)job.dst[x.t] + (int64_t)u * v.n * v.d;
  return x;
}
__device__ __forceinline__ float f16_fin(float y) { y = fabsf(y); return y < PCU_INF ? y : 0.0f; } /* inf, NaN: 0 */
__device__ __forceinline__ float f16_max4(float4 x) { return fmaxf(fmaxf(f16_fin(x.x), f16_fin(x.y)), fmaxf(f16_fin(x.z), f16_fin(x.w))); }
/* 2^e for the tile whose threads' largest magnitudes are m (e = pcu_f16_exp of their maximum,
 * written to exps by thread 0); red holds T / 32 floats. Ends with the block synchronised. */
template <int T>
__device__ __forceinline__ float f16_tile_scale(float m, const pcu_f16_job &job, const pcu_f16_tile &x, int16_t *exps, float *red) {
  static_assert(T <= 1024, "one warp reduces the warps' maxima");
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
  __syncthreads();
  m = (threadIdx.x & 31) < T / 32 ? red[threadIdx.x & 31] : 0.0f;
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  const int e = pcu_f16_exp(m);
  if (threadIdx.x == 0) exps[x.t == 0 ? x.cc : job.qpad + 2 * (int64_t)x.cc + x.t - 1] = (int16_t)e;
  return ldexpf(1.0f, e);
}
/* f16(f x) of four floats at out. */
__device__ __forceinline__ void f16_store4(__half *out, float4 x, float f) {
  const __half2 lo = __floats2half2_rn(x.x * f, x.y * f), hi = __floats2half2_rn(x.z * f, x.w * f);
  uint2 w;
  w.x = *(const uint32_t *)&lo;
  w.y = *(const uint32_t *)&hi;
  *(uint2 *)out = w;
}
/* Lets the attention kernel that follows (launched as a programmatic dependent, flash_wgmma.cu)
 * start its prologue; it waits for this grid's writes before reading them. */
__device__ __forceinline__ void f16_release_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* Many tiles: one block per tile of job.rows[t] rows of a unit of view t (grid-stride; rows
 * 16-byte aligned, THREADS divisible by d / 4): the block reads the tile once to find its
 * largest finite magnitude, then again (from L1 or L2) to write f16(2^e x), e = pcu_f16_exp
 * of it. Four loads in flight a thread and few registers, so that several tiles are in flight
 * on each multiprocessor. */
__global__ void __launch_bounds__(THREADS, 4) k_f16_tiles(pcu_f16_job job, int16_t *exps) {
  __shared__ float red[THREADS / 32];
  f16_release_dependents();
  const uint32_t total = (uint32_t)(job.chunks[0] + job.chunks[1] + job.chunks[2]);
  for (uint32_t c = blockIdx.x; c < total; c += gridDim.x) {
    const pcu_f16_tile x = f16_tile_of(job, c);
    const pcu_view &v = job.v[x.t];
    const int c4 = (int)(v.d / 4), step = THREADS / c4, col = (threadIdx.x % c4) * 4;
    const int64_t r1 = x.r0 + threadIdx.x / c4;
    /* f(x, r) for this thread's float4s of the tile (rows r1, r1 + step, ..), four at a time */
    auto each = [&](auto f) {
      for (int64_t ra = r1; ra < x.rend; ra += 4 * step) {
        float4 y[4];
#pragma unroll
        for (int k = 0; k < 4; k++)
          if (ra + k * step < x.rend) y[k] = __ldg((const float4 *)(x.src + (ra + k * step) * v.sn + col));
#pragma unroll
        for (int k = 0; k < 4; k++)
          if (ra + k * step < x.rend) f(y[k], ra + k * step);
      }
    };
    float m = 0.0f;
    each([&](float4 y, int64_t) { m = fmaxf(m, f16_max4(y)); });
    const float f = f16_tile_scale<THREADS>(m, job, x, exps, red);
    each([&](float4 y, int64_t r) { f16_store4(x.out + r * v.d + col, y, f); });
    __syncthreads(); /* red is free for the next tile */
  }
}

/* Few tiles (one wave of blocks, two a multiprocessor): one block of HOLD_T threads a tile of
 * at most HOLD_T * HOLD_N float4s, each thread holding its HOLD_N of them in registers, so that
 * the tile is read once, in one round of loads instead of k_f16_tiles' two passes of up to
 * four rounds. The copies of a small attention are latency bound: with this kernel a TF32
 * call at b=1 h=12 n=512 d=128 took 20.8 us, with k_f16_tiles 22.4 us (H200). */
#define HOLD_T 512
#define HOLD_N 8
__global__ void __launch_bounds__(HOLD_T, 2) k_f16_tiles_hold(pcu_f16_job job, int16_t *exps) {
  __shared__ float red[HOLD_T / 32];
  f16_release_dependents();
  const pcu_f16_tile x = f16_tile_of(job, blockIdx.x);
  const pcu_view &v = job.v[x.t];
  /* rows r1, r1 + step, .. of the tile, columns col .. col + 3 */
  const int c4 = (int)(v.d / 4), r1 = threadIdx.x / c4, col = (threadIdx.x - r1 * c4) * 4, step = HOLD_T / c4;
  const int nr = (int)(x.rend - x.r0);
  const float *src = x.src + (x.r0 + r1) * v.sn + col;
  __half *out = x.out + (x.r0 + r1) * v.d + col;
  float4 y[HOLD_N];
  float m = 0.0f;
#pragma unroll
  for (int k = 0; k < HOLD_N; k++)
    if (r1 + k * step < nr) y[k] = __ldg((const float4 *)(src + (int64_t)(k * step) * v.sn));
#pragma unroll
  for (int k = 0; k < HOLD_N; k++)
    if (r1 + k * step < nr) m = fmaxf(m, f16_max4(y[k]));
  const float f = f16_tile_scale<HOLD_T>(m, job, x, exps, red);
#pragma unroll
  for (int k = 0; k < HOLD_N; k++)
    if (r1 + k * step < nr) f16_store4(out + (int64_t)(k * step) * v.d, y[k], f);
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

/* ---- 8 columns per thread: the row-wise passes of the backward ----
 * Where d is a multiple of 8, every row start of the view sits on 16 bytes and the counts
 * fit 32 bits (rows8_ok on the host), a thread moves 8 consecutive elements with 16-byte
 * accesses and decomposes its index in 32-bit arithmetic. The per-element kernels below
 * them, with five 64-bit divisions per element, cost about as much as the fused backward
 * kernel itself at FlashAttention's shapes. */

/* 8 elements of a view row from element i (16-byte aligned) to f32, and back. */
__device__ __forceinline__ void load8(const void *base, int dt, int64_t i, float *x) {
  if (dt == PCU_F32) {
    const float4 a = *(const float4 *)((const float *)base + i), b = *(const float4 *)((const float *)base + i + 4);
    x[0] = a.x; x[1] = a.y; x[2] = a.z; x[3] = a.w; x[4] = b.x; x[5] = b.y; x[6] = b.z; x[7] = b.w;
    return;
  }
  const uint4 w = *(const uint4 *)((const uint16_t *)base + i);
  const uint32_t u[4] = {w.x, w.y, w.z, w.w};
  for (int k = 0; k < 4; k++) {
    const uint16_t lo = (uint16_t)(u[k] & 0xffffu), hi = (uint16_t)(u[k] >> 16);
    x[2 * k] = dt == PCU_F16 ? pcu_f16_to_f32(lo) : pcu_bf16_to_f32(lo);
    x[2 * k + 1] = dt == PCU_F16 ? pcu_f16_to_f32(hi) : pcu_bf16_to_f32(hi);
  }
}

__device__ __forceinline__ void store8(void *base, int dt, int64_t i, const float *x) {
  if (dt == PCU_F32) {
    *(float4 *)((float *)base + i) = make_float4(x[0], x[1], x[2], x[3]);
    *(float4 *)((float *)base + i + 4) = make_float4(x[4], x[5], x[6], x[7]);
    return;
  }
  uint32_t u[4];
  for (int k = 0; k < 4; k++) {
    const uint16_t lo = dt == PCU_F16 ? pcu_f32_to_f16(x[2 * k]) : pcu_f32_to_bf16(x[2 * k]);
    const uint16_t hi = dt == PCU_F16 ? pcu_f32_to_f16(x[2 * k + 1]) : pcu_f32_to_bf16(x[2 * k + 1]);
    u[k] = (uint32_t)lo | ((uint32_t)hi << 16);
  }
  *(uint4 *)((uint16_t *)base + i) = make_uint4(u[0], u[1], u[2], u[3]);
}

/* Chunk idx of a workspace in [unit][head][row][d] order, 8 columns per chunk: the unit (of
 * the chunk starting at u0), head, row and first column, and the view row it belongs to. */
struct chunk8 {
  uint32_t t, h, i, c;
};
__device__ __forceinline__ chunk8 chunk8_of(uint32_t idx, uint32_t cpr, uint32_t n, uint32_t H) {
  chunk8 k;
  k.c = (idx % cpr) * 8;
  idx /= cpr;
  k.i = idx % n;
  idx /= n;
  k.h = idx % H;
  k.t = idx / H;
  return k;
}
__device__ __forceinline__ int64_t chunk8_row(const pcu_view &v, uint32_t u, uint32_t ih, uint32_t i) {
  const uint32_t ns = (uint32_t)v.ns;
  return pcu_row(v, u / ns, u % ns, ih, i);
}

/* k_gather with 8 columns per thread. */
__global__ void k_gather8(float *dst, pcu_view src, uint32_t u0, uint32_t H, uint32_t group, uint32_t chunks) {
  const uint32_t cpr = (uint32_t)src.d / 8, n = (uint32_t)src.n;
  for (uint32_t idx = blockIdx.x * blockDim.x + threadIdx.x; idx < chunks; idx += gridDim.x * blockDim.x) {
    const chunk8 k = chunk8_of(idx, cpr, n, H);
    float x[8];
    load8(src.buf, src.dtype, chunk8_row(src, u0 + k.t, k.h / group, k.i) + k.c, x);
    store8(dst, PCU_F32, (int64_t)idx * 8, x);
  }
}

/* k_scatter with 8 columns per thread. */
__global__ void k_scatter8(pcu_view dst, const float *src, uint32_t u0, uint32_t group, float alpha, uint32_t chunks) {
  const uint32_t cpr = (uint32_t)dst.d / 8, n = (uint32_t)dst.n, nh = (uint32_t)dst.nh;
  const int64_t plane = (int64_t)n * dst.d;
  for (uint32_t idx = blockIdx.x * blockDim.x + threadIdx.x; idx < chunks; idx += gridDim.x * blockDim.x) {
    const chunk8 k = chunk8_of(idx, cpr, n, nh);
    const float *p = src + ((int64_t)k.t * nh + k.h) * group * plane + (int64_t)k.i * dst.d + k.c;
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, x[8];
    for (uint32_t g = 0; g < group; g++, p += plane) {
      load8(p, PCU_F32, 0, x);
      for (int e = 0; e < 8; e++) acc[e] += x[e];
    }
    for (int e = 0; e < 8; e++) acc[e] *= alpha;
    store8(dst.buf, dst.dtype, chunk8_row(dst, u0 + k.t, k.h, k.i) + k.c, acc);
  }
}

/* k_rowdot with 8 columns per lane: L lanes per row (a power of two, L*8 <= d), 32/L rows per
 * warp; the lanes of a row are consecutive, so the butterfly stays within them. */
__global__ void k_rowdot8(float *D, pcu_view a, pcu_view b, uint32_t u0, uint32_t rows, int L) {
  const uint32_t lane = threadIdx.x & 31, sub = lane % (uint32_t)L, per = 32 / (uint32_t)L;
  const uint32_t n = (uint32_t)a.n, nh = (uint32_t)a.nh, d = (uint32_t)a.d;
  const uint32_t warps = gridDim.x * blockDim.x / 32;
  for (uint32_t w = (blockIdx.x * blockDim.x + threadIdx.x) / 32; w * per < rows; w += warps) {
    const uint32_t r = w * per + lane / (uint32_t)L;
    float s = 0.0f;
    if (r < rows) {
      const uint32_t i = r % n, ih = (r / n) % nh, u = u0 + r / n / nh;
      const int64_t ra = chunk8_row(a, u, ih, i), rb = chunk8_row(b, u, ih, i);
      for (uint32_t c = sub * 8; c < d; c += 8 * (uint32_t)L) {
        float x[8], y[8];
        load8(a.buf, a.dtype, ra + c, x);
        load8(b.buf, b.dtype, rb + c, y);
        for (int e = 0; e < 8; e++) s += x[e] * y[e];
      }
    }
    for (int o = L / 2; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (r < rows && sub == 0) D[r] = s;
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

/* Dense views (row-major, no gaps) are flat arrays: no index decomposition. */
static bool view_dense(const pcu_view &v) {
  return (v.n <= 1 || v.sn == v.d) && (v.nh <= 1 || v.sh == v.n * v.d) && (v.ns <= 1 || v.ss == v.nh * v.n * v.d) &&
         (v.nb <= 1 || v.sb == v.ns * v.nh * v.n * v.d);
}

extern "C" int pcu_fill(cudaStream_t s, pcu_view dst, float value) {
  int64_t total = pcu_view_count(dst);
  if (total <= 0) return 0;
  k_fill<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst, value, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_copy(cudaStream_t s, pcu_view dst, pcu_view src, float alpha) {
  int64_t total = pcu_view_count(dst);
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
  const int64_t total = pcu_view_count(out), rows = out.nb * out.ns * out.nh * out.n;
  if (total <= 0) return 0;
  k_split_combine<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(out, lse, po, pl, S, out_scale, rows, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_f16_tiles(cudaStream_t s, const pcu_view src[3], uint16_t *const dst[3], const int rows[3], int16_t *exps,
                             int num_sms) {
  pcu_f16_job job;
  int64_t total = 0;
  for (int t = 0; t < 3; t++) {
    const pcu_view &v = src[t];
    if (v.d % 4 != 0 || THREADS % (v.d / 4) != 0 || rows[t] <= 0) return (int)cudaErrorInvalidValue;
    job.v[t] = v;
    job.dst[t] = dst[t];
    job.rows[t] = rows[t];
    job.tiles[t] = (v.n + rows[t] - 1) / rows[t];
    job.chunks[t] = v.nb * v.ns * v.nh * job.tiles[t];
    total += job.chunks[t];
  }
  if (total <= 0) return 0;
  if (job.chunks[1] != job.chunks[2]) return (int)cudaErrorInvalidValue; /* k and v in pairs */
  if (total > 0x7fffffffLL) return (int)cudaErrorInvalidValue;          /* f16_tile_of's 32 bits */
  job.qpad = (job.chunks[0] + 1) / 2 * 2;
  bool hold = num_sms > 0 && total <= 2 * (int64_t)num_sms;
  for (int t = 0; t < 3; t++) hold = hold && (int64_t)rows[t] * src[t].d <= 4 * HOLD_T * HOLD_N;
  if (hold)
    k_f16_tiles_hold<<<(unsigned)total, HOLD_T, 0, s>>>(job, exps);
  else
    k_f16_tiles<<<total < 65535 * 64 ? (unsigned)total : 65535u * 64u, THREADS, 0, s>>>(job, exps);
  return (int)cudaGetLastError();
}

extern "C" int pcu_merge(cudaStream_t s, pcu_view ao, pcu_view al, pcu_view po, pcu_view pl) {
  int64_t total = pcu_view_count(ao), rows = pcu_view_count(al);
  if (rows <= 0) return 0;
  if (total > 0) k_merge_out<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(ao, al, po, pl, total);
  k_merge_lse<<<pcu_blocks(rows, THREADS), THREADS, 0, s>>>(al, pl, rows);
  return (int)cudaGetLastError();
}

/* Whether the 8-column kernels apply to view v over units [u0, u0+nu) with H heads: d a
 * multiple of 8, rows on 16 bytes (a dense f32 workspace ws, where given, too) and every
 * index within 32 bits. */
static bool rows8_ok(const pcu_view &v, const float *ws, int64_t u0, int64_t nu, int64_t H) {
  const int esize = v.dtype == PCU_F32 ? 4 : 2;
  const int64_t lim = (int64_t)1 << 31;
  return v.d > 0 && v.d % 8 == 0 && pcu_rows_aligned(v, esize, 16) && ((uintptr_t)ws % 16) == 0 &&
         u0 + nu < lim && nu * H * v.n * v.d < lim && v.nb * v.ns < lim;
}

extern "C" int pcu_gather(cudaStream_t s, float *dst, pcu_view src, int64_t u0, int64_t nu, int64_t H, int64_t group) {
  int64_t total = nu * H * src.n * src.d;
  if (total <= 0) return 0;
  if (rows8_ok(src, dst, u0, nu, H)) {
    k_gather8<<<pcu_blocks(total / 8, THREADS), THREADS, 0, s>>>(dst, src, (uint32_t)u0, (uint32_t)H, (uint32_t)group,
                                                                  (uint32_t)(total / 8));
    return (int)cudaGetLastError();
  }
  k_gather<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst, src, u0, H, group, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_scatter(cudaStream_t s, pcu_view dst, const float *src, int64_t u0, int64_t nu, int64_t group, float alpha) {
  int64_t total = nu * dst.nh * dst.n * dst.d;
  if (total <= 0) return 0;
  if (rows8_ok(dst, src, u0, nu, dst.nh * group)) {
    k_scatter8<<<pcu_blocks(total / 8, THREADS), THREADS, 0, s>>>(dst, src, (uint32_t)u0, (uint32_t)group, alpha,
                                                                   (uint32_t)(total / 8));
    return (int)cudaGetLastError();
  }
  k_scatter<<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(dst, src, u0, group, alpha, total);
  return (int)cudaGetLastError();
}

extern "C" int pcu_rowdot(cudaStream_t s, float *D, pcu_view a, pcu_view b, int64_t u0, int64_t nu) {
  int64_t rows = nu * a.nh * a.n;
  if (rows <= 0) return 0;
  if (rows8_ok(a, nullptr, u0, nu, a.nh) && rows8_ok(b, nullptr, u0, nu, b.nh)) {
    int L = 1;
    while (L < 32 && L * 16 <= a.d) L *= 2; /* L*8 <= d */
    const int64_t warps = (rows + 32 / L - 1) / (32 / L);
    k_rowdot8<<<pcu_blocks(warps * 32, THREADS), THREADS, 0, s>>>(D, a, b, (uint32_t)u0, (uint32_t)rows, L);
    return (int)cudaGetLastError();
  }
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

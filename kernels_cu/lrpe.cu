/* md_lrpe_cosine forward and backward (SPEC.md section 6), memory-bound: every byte is read
 * or written once. One thread per (row = head*n + t, group of V columns, batch chunk): it
 * issues the loads of its first batch rows, then forms its V angles (one exact f32 multiply
 * each) and their accurate sincosf (angles reach 1e5 rad, so no fast-math intrinsics) while
 * those loads are in flight, and applies them to every batch row of its chunk. A chunk is
 * the whole batch unless the grid would then be too small to fill the device. Loads and
 * stores are 16 bytes wide when the rows are aligned; the grid is 2-D (x: row and column
 * group, y: batch chunk) so the index math is 32-bit wherever the sizes allow.
 * Parallel to kernels_cl/lrpe.cl. */
#include "common.cuh"

/* threads per block: the backward, which reads twice what it writes, reached 87% of the
 * copy rate with 128 against 79% with 256 (H200, bf16, b=12 h=12 d=128, n=4096-32768) */
#ifndef FWD_THREADS
#define FWD_THREADS 256
#endif
#ifndef BWD_THREADS
#define BWD_THREADS 128
#endif
/* batch rows whose loads are in flight together */
#ifndef BU
#define BU 4
#endif
/* blocks per multiprocessor the register budget must allow */
/* sincosf evaluations interleaved per thread */
#ifndef SC_UNROLL
#define SC_UNROLL 1
#endif
#define PCU_PRAGMA_(x) _Pragma(#x)
#define PCU_UNROLL(n) PCU_PRAGMA_(unroll n)
#ifndef FWD_MINB
#define FWD_MINB 4
#endif
#ifndef BWD_MINB
#define BWD_MINB 4
#endif

typedef struct lrpe_geom {
  uint32_t shape[8];
  uint32_t stride[8]; /* product of the later axes' extents */
  int d, e, extra, n, h; /* as ints: the host checked n < 2^31 */
  int groups;            /* column groups per row */
  int bc;                /* batches per chunk */
} lrpe_geom;

/* V elements of a row as raw words: the dtype's packed bits when `vec` (16-byte loads),
 * else f32 bits of element-wise loads (tails and unaligned views). */
template <int V> struct raw { uint32_t w[V]; };

template <int V, int DT, bool VEC> __device__ __forceinline__ raw<V> ld_raw(const pcu_mat &m, int64_t i, int nv) {
  raw<V> r;
  if constexpr (VEC) {
    if constexpr (DT == PCU_F32) {
#pragma unroll
      for (int q = 0; q < V / 4; q++) {
        const uint4 t = *(const uint4 *)((const float *)m.buf + m.offset + i + 4 * q);
        r.w[4 * q] = t.x; r.w[4 * q + 1] = t.y; r.w[4 * q + 2] = t.z; r.w[4 * q + 3] = t.w;
      }
    } else if constexpr (V == 8) {
      const uint4 t = *(const uint4 *)((const uint16_t *)m.buf + m.offset + i);
      r.w[0] = t.x; r.w[1] = t.y; r.w[2 % V] = t.z; r.w[3 % V] = t.w;
    } else {
      const uint2 t = *(const uint2 *)((const uint16_t *)m.buf + m.offset + i);
      r.w[0] = t.x; r.w[1] = t.y;
    }
  } else {
#pragma unroll
    for (int e = 0; e < V; e++) r.w[e] = __float_as_uint(e < nv ? pcu_load(m.buf, DT, m.offset + i + e) : 0.0f);
  }
  return r;
}

template <int V, int DT, bool VEC> __device__ __forceinline__ void unpack(const raw<V> &r, float *x) {
  if constexpr (!VEC || DT == PCU_F32) {
#pragma unroll
    for (int e = 0; e < V; e++) x[e] = __uint_as_float(r.w[e]);
  } else {
#pragma unroll
    for (int e = 0; e < V; e++) {
      const uint16_t h = (uint16_t)(e & 1 ? r.w[e / 2] >> 16 : r.w[e / 2] & 0xffffu);
      x[e] = DT == PCU_F16 ? pcu_f16_to_f32(h) : pcu_bf16_to_f32(h);
    }
  }
}

template <int DT> __device__ __forceinline__ uint32_t to16(float x) { return DT == PCU_F16 ? pcu_f32_to_f16(x) : pcu_f32_to_bf16(x); }

/* A vector store, cache-streaming (evict first): outputs are not read again here, and the
 * forward pass, which writes twice what it reads, gained 1-4 points of the copy bandwidth
 * with it (H200, bf16, seed-002 sizes). */
template <typename T> __device__ __forceinline__ void stg(T *p, T v) { __stcs(p, v); }

/* V values to row-relative index i: one 16-byte store (two for f32) when vec, else the
 * first nv element-wise. */
template <int V, int DT, bool VEC> __device__ __forceinline__ void st(const pcu_mat &m, int64_t i, int nv, const float *x) {
  if constexpr (VEC) {
    if constexpr (DT == PCU_F32) {
#pragma unroll
      for (int q = 0; q < V / 4; q++)
        stg((float4 *)((float *)m.buf + m.offset + i + 4 * q), make_float4(x[4 * q], x[4 * q + 1], x[4 * q + 2], x[4 * q + 3]));
    } else {
      uint32_t w[V / 2];
#pragma unroll
      for (int e = 0; e < V / 2; e++) w[e] = to16<DT>(x[2 * e]) | (to16<DT>(x[2 * e + 1]) << 16);
      if (V == 8) stg((uint4 *)((uint16_t *)m.buf + m.offset + i), make_uint4(w[0], w[1], w[2 % (V / 2)], w[3 % (V / 2)]));
      else stg((uint2 *)((uint16_t *)m.buf + m.offset + i), make_uint2(w[0], w[1]));
    }
  } else {
#pragma unroll
    for (int e = 0; e < V; e++)
      if (e < nv) pcu_store(m.buf, DT, m.offset + i + e, x[e]);
  }
}

/* This thread's (row, column group, batch range); I: the index type of x (uint32_t unless
 * h*n*groups reaches 2^32). Returns false past the end. */
struct lrpe_item {
  int64_t row, b0, b1;
  int hh, t, k, nv;
};
template <int V, typename I, int TH> __device__ __forceinline__ bool item(const pcu_lrpe_args &a, const lrpe_geom &g, lrpe_item &it) {
  const I idx = (I)blockIdx.x * TH + threadIdx.x;
  const I rows = (I)g.h * (I)g.n;
  const I row = idx / (I)g.groups;
  if (row >= rows) return false;
  it.row = (int64_t)row;
  it.k = (int)(idx - row * (I)g.groups) * V;
  it.hh = (int)(row / (I)g.n);
  it.t = (int)(row - (I)it.hh * (I)g.n);
  it.b0 = (int64_t)blockIdx.y * g.bc;
  it.b1 = min(a.b, it.b0 + g.bc);
  it.nv = min(V, g.d - it.k);
  return true;
}

/* v[i] by selects: an indexed read of the geometry made the compiler copy all of lrpe_geom
 * to local memory in every thread (12 stores before the bounds check). */
__device__ __forceinline__ uint32_t pick(const uint32_t (&v)[8], int i) {
  uint32_t r = v[0];
#pragma unroll
  for (int j = 1; j < 8; j++) r = i == j ? v[j] : r;
  return r;
}

/* The position (c / stride[ax]) % shape[ax] of angle column axis ax, with no division where the stride is 1
 * (the last axis, so every 1-d grid) and no modulo on the first axis (c < N). */
__device__ __forceinline__ float position(const lrpe_geom &g, uint32_t c, int ax) {
  const uint32_t s = pick(g.stride, ax);
  uint32_t q = s == 1 ? c : c / s;
  if (ax > 0) q %= pick(g.shape, ax);
  return (float)q;
}

/* The thread's V angles, each one rounded f32 product position * theta (never contracted),
 * 32-bit index arithmetic only. e is a power of two (the core checks it) and k a multiple of
 * V, so for e >= V the V columns share one axis and position: one position and one theta
 * dtype test per thread instead of per column. Other e go column by column. */
template <int V>
__device__ __forceinline__ void form_angles(const pcu_lrpe_args &a, const lrpe_geom &g, const lrpe_item &it, float *ang) {
#pragma unroll
  for (int j = 0; j < V; j++) ang[j] = 0.0f;
  if (it.t < g.extra) return;
  const uint32_t c = (uint32_t)(it.t - g.extra);
  const int64_t tb = a.theta.offset + (int64_t)it.hh * g.e;
  if (g.e >= V && (g.e & (g.e - 1)) == 0) {
    const int sh = __ffs(g.e) - 1;
    const float pos = position(g, c, it.k >> sh);
    const int64_t t0 = tb + (it.k & (g.e - 1));
    float th[V];
    if (a.theta.dtype == PCU_F32) {
#pragma unroll
      for (int j = 0; j < V; j++) th[j] = j < it.nv ? ((const float *)a.theta.buf)[t0 + j] : 0.0f;
    } else {
#pragma unroll
      for (int j = 0; j < V; j++) th[j] = j < it.nv ? pcu_load(a.theta.buf, a.theta.dtype, t0 + j) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < V; j++) ang[j] = __fmul_rn(pos, th[j]);
  } else {
#pragma unroll
    for (int j = 0; j < V; j++)
      if (j < it.nv) {
        const int col = it.k + j;
        ang[j] = __fmul_rn(position(g, c, col / g.e), pcu_load(a.theta.buf, a.theta.dtype, tb + col % g.e));
      }
  }
}

/* sin and cos of the thread's V angles; in forward, the first chunk writes the cache. One
 * sincosf at a time, through shared memory, so the accurate sincosf's large code is not
 * replicated V times and the registers stay few enough for full occupancy. */
template <int V, int TH>
__device__ __forceinline__ void angles(const pcu_lrpe_args &a, const lrpe_geom &g, const lrpe_item &it, bool fwd,
                                       float *cs, float *sn) {
  __shared__ float sc[2][V][TH];
  /* the V angles: read from the cache (backward) or formed, and written to the cache by the
   * forward's first chunk; 16 bytes at a time where the cache row allows it */
  const int64_t c0 = a.cache.offset + it.row * g.d + it.k;
  float *cache = (float *)a.cache.buf;
  const bool cvec = cache && it.nv == V && V % 4 == 0 && (c0 & 3) == 0 && ((uintptr_t)cache & 15) == 0;
  float ang[V];
  if (!fwd && cvec) {
#pragma unroll
    for (int q = 0; q < V / 4; q++) {
      const float4 t = *(const float4 *)(cache + c0 + 4 * q);
      ang[4 * q] = t.x; ang[4 * q + 1] = t.y; ang[4 * q + 2] = t.z; ang[4 * q + 3] = t.w;
    }
  } else {
    if (!fwd && cache) {
#pragma unroll
      for (int e = 0; e < V; e++) ang[e] = e < it.nv ? cache[c0 + e] : 0.0f;
    } else {
      form_angles<V>(a, g, it, ang);
    }
  }
  if (fwd && cache && it.b0 == 0) {
    if (cvec) {
#pragma unroll
      for (int q = 0; q < V / 4; q++)
        stg((float4 *)(cache + c0 + 4 * q), make_float4(ang[4 * q], ang[4 * q + 1], ang[4 * q + 2], ang[4 * q + 3]));
    } else {
#pragma unroll
      for (int e = 0; e < V; e++)
        if (e < it.nv) cache[c0 + e] = ang[e];
    }
  }
#pragma unroll
  for (int e = 0; e < V; e++) sc[0][e][threadIdx.x] = ang[e];
  /* SC_UNROLL sincosf at a time (see above); each thread reads and writes only its own slots */
  PCU_UNROLL(SC_UNROLL)
  for (int e = 0; e < V; e++) {
    float sv, cv;
    sincosf(sc[0][e][threadIdx.x], &sv, &cv);
    sc[0][e][threadIdx.x] = cv;
    sc[1][e][threadIdx.x] = sv;
  }
#pragma unroll
  for (int e = 0; e < V; e++) { cs[e] = sc[0][e][threadIdx.x]; sn[e] = sc[1][e][threadIdx.x]; }
}

/* The batch loop of both kernels, with the first pass peeled off where the loads are vector
 * loads: load(b0) issues the loads of batch rows b0 .. b0+BU-1, form() the angles
 * while the first ones fly, use(b0) consumes them. With form_angles inside the loop (run
 * on its first pass only) the forward spilled registers and the backward needed 101
 * instead of 92 (bf16, V=8, ptxas sm_90); peeled: 61 and 83, no spills. */
template <bool PEEL, typename L, typename F, typename U>
__device__ __forceinline__ void batch_loop(const lrpe_item &it, L load, F form, U use) {
  if constexpr (PEEL) {
    int64_t b0 = it.b0;
    load(b0);
    form(); /* while the loads fly */
    for (;;) {
      use(b0);
      if ((b0 += BU) >= it.b1) break;
      load(b0);
    }
  } else {
    bool have = false;
    for (int64_t b0 = it.b0; b0 < it.b1; b0 += BU) {
      load(b0);
      if (!have) { form(); have = true; }
      use(b0);
    }
  }
}

template <int V, int DT, bool VEC, typename I>
__global__ void __launch_bounds__(FWD_THREADS, FWD_MINB) k_lrpe_fwd(pcu_lrpe_args a, lrpe_geom g) {
  lrpe_item it;
  if (!item<V, I, FWD_THREADS>(a, g, it)) return;
  const int64_t bstride = (int64_t)g.h * g.n;
  float cs[V], sn[V];
  raw<V> x[BU];
  batch_loop<VEC>(
      it,
      [&](int64_t b0) {
#pragma unroll
        for (int u = 0; u < BU; u++)
          if (b0 + u < it.b1) x[u] = ld_raw<V, DT, VEC>(a.in, ((b0 + u) * bstride + it.row) * g.d + it.k, it.nv);
      },
      [&] { angles<V, FWD_THREADS>(a, g, it, true, cs, sn); },
      [&](int64_t b0) {
#pragma unroll
        for (int u = 0; u < BU; u++) {
          if (b0 + u >= it.b1) break;
          const int64_t o = ((b0 + u) * bstride + it.row) * 2 * g.d + it.k;
          float xv[V], y[V];
          unpack<V, DT, VEC>(x[u], xv);
#pragma unroll
          for (int e = 0; e < V; e++) y[e] = xv[e] * cs[e];
          st<V, DT, VEC>(a.out, o, it.nv, y);
#pragma unroll
          for (int e = 0; e < V; e++) y[e] = xv[e] * sn[e];
          st<V, DT, VEC>(a.out, o + g.d, it.nv, y);
        }
      });
}

template <int V, int DT, bool VEC, typename I>
__global__ void __launch_bounds__(BWD_THREADS, BWD_MINB) k_lrpe_bwd(pcu_lrpe_args a, lrpe_geom g) {
  lrpe_item it;
  if (!item<V, I, BWD_THREADS>(a, g, it)) return;
  const int64_t bstride = (int64_t)g.h * g.n;
  float cs[V], sn[V];
  raw<V> gc[BU], gs[BU];
  batch_loop<VEC>(
      it,
      [&](int64_t b0) {
#pragma unroll
        for (int u = 0; u < BU; u++)
          if (b0 + u < it.b1) {
            const int64_t o = ((b0 + u) * bstride + it.row) * 2 * g.d + it.k;
            gc[u] = ld_raw<V, DT, VEC>(a.in, o, it.nv);
            gs[u] = ld_raw<V, DT, VEC>(a.in, o + g.d, it.nv);
          }
      },
      [&] { angles<V, BWD_THREADS>(a, g, it, false, cs, sn); },
      [&](int64_t b0) {
#pragma unroll
        for (int u = 0; u < BU; u++) {
          if (b0 + u >= it.b1) break;
          float c[V], s[V], dx[V];
          unpack<V, DT, VEC>(gc[u], c);
          unpack<V, DT, VEC>(gs[u], s);
#pragma unroll
          for (int e = 0; e < V; e++) dx[e] = fmaf(c[e], cs[e], s[e] * sn[e]);
          st<V, DT, VEC>(a.out, ((b0 + u) * bstride + it.row) * g.d + it.k, it.nv, dx);
        }
      });
}

#ifdef __CUDACC_RTC__
/* NVRTC (common.cuh, "Under NVRTC"): every kernel the host side below launches. */
#define LRPE_INST(V, DT, VEC, I) \
  template __global__ void k_lrpe_fwd<V, DT, VEC, I>(pcu_lrpe_args, lrpe_geom); \
  template __global__ void k_lrpe_bwd<V, DT, VEC, I>(pcu_lrpe_args, lrpe_geom);
#define LRPE_INST_DT(DT, I) LRPE_INST(8, DT, true, I) LRPE_INST(4, DT, true, I) LRPE_INST(4, DT, false, I)
#define LRPE_INST_I(I) LRPE_INST_DT(PCU_F32, I) LRPE_INST_DT(PCU_F16, I) LRPE_INST_DT(PCU_BF16, I)
LRPE_INST_I(uint32_t)
LRPE_INST_I(uint64_t)
#else /* host side: launchers */
/* Threads below which the batch is split into chunks. Every chunk forms the sin/cos of its
 * rows again, and at short sequences that work, not memory, bounds the kernel (ncu, H200,
 * n=256: 60% of the SM's issue rate, 13% of DRAM), so chunks stay few: 2^17 threads gave
 * 1.3-1.6x the throughput of 2^19 at n = 256-2048 and the same beyond. */
#ifndef TARGET_THREADS
#define TARGET_THREADS ((int64_t)1 << 17)
#endif
static lrpe_geom geom(const pcu_lrpe_args *a, int V) {
  lrpe_geom g;
  uint32_t st = 1;
  for (int i = 7; i >= 0; i--) {
    g.shape[i] = i < a->ndims ? (uint32_t)a->shape[i] : 1u;
    g.stride[i] = st;
    if (i < a->ndims) st *= g.shape[i];
  }
  g.d = (int)a->d; g.e = (int)a->e; g.extra = (int)a->extra_tokens; g.n = (int)a->n; g.h = (int)a->h;
  g.groups = (int)((a->d + V - 1) / V);
  /* short sequences: split the batch so the grid still fills the device (sin/cos are then
   * formed once per chunk instead of once per (head, row)) */
  const int64_t rows = a->h * a->n * g.groups;
  int64_t chunks = (TARGET_THREADS + rows - 1) / rows;
  if (chunks > a->b) chunks = a->b;
  if (chunks > 65535) chunks = 65535; /* grid y */
  if (chunks < 1) chunks = 1;
  const int64_t bc = (a->b + chunks - 1) / chunks;
  g.bc = bc > 0x7fffffff ? 0x7fffffff : (int)bc;
  return g;
}

/* Rows of d elements start 16-byte aligned when d and the offset are multiples of the
 * vector width and the buffer is aligned. */
static bool mat_vec(const pcu_mat &m, int64_t d, int V) {
  size_t bytes = m.dtype == PCU_F32 ? 4 : 2;
  int64_t w = 16 / (int64_t)bytes; /* elements per 16 bytes */
  if (V < w) w = V;
  return d % V == 0 && m.offset % w == 0 && ((uintptr_t)m.buf % 16) == 0;
}

template <int V, int DT, bool VEC> static int launch_v(cudaStream_t s, const pcu_lrpe_args *a, bool fwd) {
  const lrpe_geom g = geom(a, V);
  const int64_t items = a->h * a->n * g.groups, chunks = (a->b + g.bc - 1) / g.bc;
  const int th = fwd ? FWD_THREADS : BWD_THREADS;
  const int64_t bx = (items + th - 1) / th;
  if (bx > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  const dim3 grid((unsigned)bx, (unsigned)chunks);
  const bool narrow = bx * th < ((int64_t)1 << 32);
  if (fwd) {
    if (narrow) k_lrpe_fwd<V, DT, VEC, uint32_t><<<grid, th, 0, s>>>(*a, g);
    else k_lrpe_fwd<V, DT, VEC, uint64_t><<<grid, th, 0, s>>>(*a, g);
  } else {
    if (narrow) k_lrpe_bwd<V, DT, VEC, uint32_t><<<grid, th, 0, s>>>(*a, g);
    else k_lrpe_bwd<V, DT, VEC, uint64_t><<<grid, th, 0, s>>>(*a, g);
  }
  return (int)cudaGetLastError();
}

/* The vector kernels need every row 16-byte aligned (8 columns per thread, or 4 where d is
 * only a multiple of 4); the element-wise ones take any d, offset and alignment. */
template <int DT> static int launch_dt(cudaStream_t s, const pcu_lrpe_args *a, bool fwd) {
  if (mat_vec(a->in, a->d, 8) && mat_vec(a->out, a->d, 8)) return launch_v<8, DT, true>(s, a, fwd);
  if (mat_vec(a->in, a->d, 4) && mat_vec(a->out, a->d, 4)) return launch_v<4, DT, true>(s, a, fwd);
  return launch_v<4, DT, false>(s, a, fwd);
}

/* x and out share one dtype (the core checks it). */
static int launch(cudaStream_t s, const pcu_lrpe_args *a, bool fwd) {
  if (a->h * a->n * a->d <= 0 || a->b <= 0) return 0;
  if (a->in.dtype == PCU_F16) return launch_dt<PCU_F16>(s, a, fwd);
  if (a->in.dtype == PCU_BF16) return launch_dt<PCU_BF16>(s, a, fwd);
  return launch_dt<PCU_F32>(s, a, fwd);
}

extern "C" int pcu_lrpe_forward(cudaStream_t s, const pcu_lrpe_args *a) { return launch(s, a, true); }
extern "C" int pcu_lrpe_backward(cudaStream_t s, const pcu_lrpe_args *a) { return launch(s, a, false); }
#endif /* !__CUDACC_RTC__ */

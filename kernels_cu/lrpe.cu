/* md_lrpe_cosine forward and backward (SPEC.md section 6), memory-bound: every byte is read
 * or written once. An item is (row = head*n + t, group of V columns); a block is TX x Y
 * threads: TX items, Y threads for each, Y in {1, 2, 4, 8} chosen by the host (1 at long
 * sequences, 8 at the shortest). Thread (x, y) issues the loads of its first batch rows,
 * then, while they are in flight, forms its V/Y of the item's angles (a contiguous run of
 * columns; one exact f32 multiply each, or read from the angle cache in backward, and
 * written to it in forward) and their accurate sincosf (angles reach 1e5 rad, so no
 * fast-math intrinsics). The sin/cos meet in shared memory (one __syncthreads, none when
 * Y = 1), and each thread applies all V of them to its share of the batch: rows y, y+Y,
 * y+2Y, ... So the sin/cos are formed once per (head, row, column) however the batch is
 * split, and short sequences still get many threads. Only tiny row counts with a large
 * batch also cut the batch into chunks over grid y, each forming its own sin/cos (geom).
 * Loads and stores are 16 bytes wide when the rows are aligned; the grid is 2-D (x: items,
 * so n beyond 65535 works; y: batch chunks) and the item index math is 32-bit wherever the
 * sizes allow.
 * Parallel to kernels_cl/lrpe.cl. */
#include "common.cuh"

/* threads per block (TX * Y): the backward, which reads twice what it writes, reached 87%
 * of the copy rate with 128 against 79% with 256 (H200, bf16, b=12 h=12 d=128,
 * n=4096-32768) */
#ifndef FWD_THREADS
#define FWD_THREADS 256
#endif
#ifndef BWD_THREADS
#define BWD_THREADS 128
#endif
/* batch rows per thread whose loads are in flight together */
#ifndef BU
#define BU 4
#endif
/* sincosf evaluations interleaved per thread */
#ifndef SC_UNROLL
#define SC_UNROLL 1
#endif
#define PCU_PRAGMA_(x) _Pragma(#x)
#define PCU_UNROLL(n) PCU_PRAGMA_(unroll n)
/* blocks per multiprocessor the register budget must allow */
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
  int bc;                /* batches per chunk (the whole batch unless geom cuts it) */
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

/* Angle of column k (< d) of head hh, row t: 32-bit index arithmetic only. */
__device__ __forceinline__ float angle(const pcu_lrpe_args &a, const lrpe_geom &g, int hh, int t, int k) {
  if (t < g.extra) return 0.0f;
  const uint32_t c = (uint32_t)(t - g.extra);
  const int ax = k / g.e;
  const float pos = (float)((c / g.stride[ax]) % g.shape[ax]);
  const float th = pcu_load(a.theta.buf, a.theta.dtype, a.theta.offset + (int64_t)hh * g.e + k % g.e);
  return __fmul_rn(pos, th); /* one rounded f32 product, never contracted */
}

/* This thread's item (row, column group) and batch rows: b, b + Y, ... below b1, inside
 * the chunk [b0, b1) of blockIdx.y. I: the index type of items (uint32_t unless the grid's
 * x extent reaches 2^32 threads). Returns false past the end, with no batch rows (such a
 * thread must still reach the block's barrier). */
struct lrpe_item {
  int64_t row, b0, b, b1;
  int hh, t, k, nv;
};
template <int V, typename I> __device__ __forceinline__ bool item(const pcu_lrpe_args &a, const lrpe_geom &g, lrpe_item &it) {
  const I idx = (I)blockIdx.x * (I)blockDim.x + threadIdx.x;
  const I rows = (I)g.h * (I)g.n;
  const I row = idx / (I)g.groups;
  it.b0 = (int64_t)blockIdx.y * g.bc;
  it.b = it.b0 + threadIdx.y;
  if (row >= rows) {
    it.row = 0; it.b1 = it.b; it.hh = it.t = it.k = it.nv = 0;
    return false;
  }
  it.row = (int64_t)row;
  it.k = (int)(idx - row * (I)g.groups) * V;
  it.hh = (int)(row / (I)g.n);
  it.t = (int)(row - (I)it.hh * (I)g.n);
  it.b1 = min(a.b, it.b0 + g.bc);
  it.nv = min(V, g.d - it.k);
  return true;
}

/* sin and cos of the item's V angles, into cs and sn of each of its Y threads; in forward,
 * the first chunk writes the cache. Thread y forms the angles of columns [e0, e1), V/Y of
 * them (one when Y > V; none for y >= V then), and writes them, then their sin and cos, to
 * shared memory, one sincosf at a time so the accurate sincosf's large code is not
 * replicated and the registers stay few enough for full occupancy. Element e of item tx
 * sits at [e * TX + tx]: a warp's threads of one y touch consecutive words. Every thread of
 * the block calls this (the barrier); `valid` false: past the end, only the barrier. */
template <int V, int TH>
__device__ __forceinline__ void angles(const pcu_lrpe_args &a, const lrpe_geom &g, const lrpe_item &it, bool valid,
                                       bool fwd, float *cs, float *sn) {
  __shared__ float sc[2][V * TH];
  const int TX = blockDim.x, Y = blockDim.y;
  float *const scc = sc[0] + threadIdx.x, *const scs = sc[1] + threadIdx.x;
  if (valid) {
    const int per = V > Y ? V / Y : 1, e0 = threadIdx.y * per, e1 = min(e0 + per, V);
    /* the angles: read from the cache (backward) or formed, and written to the cache by the
     * forward's first chunk; up to 16 bytes at a time (w columns) where the cache row allows
     * it (c0 a multiple of 4 and e0 one of w, so each access is w*4-byte aligned) */
    const int64_t c0 = a.cache.offset + it.row * g.d + it.k;
    float *cache = (float *)a.cache.buf;
    const bool cvec = cache && it.nv == V && (c0 & 3) == 0 && ((uintptr_t)cache & 15) == 0;
    const int w = cvec ? min(per, 4) : 1;
    if (!fwd && cache) {
      for (int e = e0; e < e1; e += w) {
        if (w == 4) {
          const float4 t = *(const float4 *)(cache + c0 + e);
          scc[e * TX] = t.x; scc[(e + 1) * TX] = t.y; scc[(e + 2) * TX] = t.z; scc[(e + 3) * TX] = t.w;
        } else if (w == 2) {
          const float2 t = *(const float2 *)(cache + c0 + e);
          scc[e * TX] = t.x; scc[(e + 1) * TX] = t.y;
        } else {
          scc[e * TX] = e < it.nv ? cache[c0 + e] : 0.0f;
        }
      }
    } else {
      for (int e = e0; e < e1; e++) scc[e * TX] = e < it.nv ? angle(a, g, it.hh, it.t, it.k + e) : 0.0f;
      if (fwd && cache && it.b0 == 0) {
        for (int e = e0; e < e1; e += w) {
          if (w == 4) stg((float4 *)(cache + c0 + e), make_float4(scc[e * TX], scc[(e + 1) * TX], scc[(e + 2) * TX], scc[(e + 3) * TX]));
          else if (w == 2) stg((float2 *)(cache + c0 + e), make_float2(scc[e * TX], scc[(e + 1) * TX]));
          else if (e < it.nv) stg(cache + c0 + e, scc[e * TX]);
        }
      }
    }
    /* SC_UNROLL sincosf at a time (see above); each thread reads and writes only its own slots */
    PCU_UNROLL(SC_UNROLL)
    for (float *p = scc + e0 * TX, *pe = scc + e1 * TX; p < pe; p += TX) {
      float sv, cv;
      sincosf(*p, &sv, &cv);
      p[0] = cv;
      p[V * TH] = sv; /* = scs[e * TX] */
    }
  }
  if (Y > 1) __syncthreads(); /* Y is the block's: uniform */
  if (valid) {
#pragma unroll
    for (int e = 0; e < V; e++) { cs[e] = scc[e * TX]; sn[e] = scs[e * TX]; }
  }
}

/* How many batch rows the thread has: b, b + Y, ... below b1 (none past the end). */
__device__ __forceinline__ int rows_of(const lrpe_item &it, int Y) {
  return it.b < it.b1 ? (int)((it.b1 - it.b + Y - 1) / Y) : 0;
}

/* Issue the loads of the thread's next rows, up to BU of them (`left` remain): x index i
 * (row b's column k) and i + step, i + 2 step, ... (step: Y batch rows). */
template <int V, int DT, bool VEC>
__device__ __forceinline__ void ld_fwd(const pcu_lrpe_args &a, const lrpe_item &it, int64_t i, int64_t step, int left,
                                       raw<V> *x) {
#pragma unroll
  for (int u = 0; u < BU; u++)
    if (u < left) x[u] = ld_raw<V, DT, VEC>(a.in, i + u * step, it.nv);
}

template <int V, int DT, bool VEC, typename I>
__global__ void __launch_bounds__(FWD_THREADS, FWD_MINB) k_lrpe_fwd(pcu_lrpe_args a, lrpe_geom g) {
  lrpe_item it;
  const bool valid = item<V, I>(a, g, it);
  const int Y = blockDim.y;
  const int64_t step = (int64_t)Y * g.h * g.n * g.d; /* x elements from row b to b + Y */
  int64_t i = (it.b * g.h * g.n + it.row) * g.d + it.k;
  int left = rows_of(it, Y);
  raw<V> x[BU];
  ld_fwd<V, DT, VEC>(a, it, i, step, left, x);
  float cs[V], sn[V];
  angles<V, FWD_THREADS>(a, g, it, valid, true, cs, sn); /* while the loads fly */
  for (;;) {
#pragma unroll
    for (int u = 0; u < BU; u++) {
      if (u >= left) break;
      const int64_t o = 2 * (i + u * step) - it.k; /* out row: 2d wide */
      float xv[V], y[V];
      unpack<V, DT, VEC>(x[u], xv);
#pragma unroll
      for (int e = 0; e < V; e++) y[e] = xv[e] * cs[e];
      st<V, DT, VEC>(a.out, o, it.nv, y);
#pragma unroll
      for (int e = 0; e < V; e++) y[e] = xv[e] * sn[e];
      st<V, DT, VEC>(a.out, o + g.d, it.nv, y);
    }
    left -= BU;
    if (left <= 0) break;
    i += BU * step;
    ld_fwd<V, DT, VEC>(a, it, i, step, left, x);
  }
}

/* Backward's loads: both halves of dout's next rows, up to BU of them, from dout index i
 * on (step: Y batch rows). */
template <int V, int DT, bool VEC>
__device__ __forceinline__ void ld_bwd(const pcu_lrpe_args &a, const lrpe_geom &g, const lrpe_item &it, int64_t i,
                                       int64_t step, int left, raw<V> *gc, raw<V> *gs) {
#pragma unroll
  for (int u = 0; u < BU; u++)
    if (u < left) {
      gc[u] = ld_raw<V, DT, VEC>(a.in, i + u * step, it.nv);
      gs[u] = ld_raw<V, DT, VEC>(a.in, i + u * step + g.d, it.nv);
    }
}

template <int V, int DT, bool VEC, typename I>
__global__ void __launch_bounds__(BWD_THREADS, BWD_MINB) k_lrpe_bwd(pcu_lrpe_args a, lrpe_geom g) {
  lrpe_item it;
  const bool valid = item<V, I>(a, g, it);
  const int Y = blockDim.y;
  const int64_t step = (int64_t)Y * g.h * g.n * g.d; /* dx elements from row b to b + Y */
  int64_t i = (it.b * g.h * g.n + it.row) * g.d + it.k;
  int left = rows_of(it, Y);
  raw<V> gc[BU], gs[BU];
  ld_bwd<V, DT, VEC>(a, g, it, 2 * i - it.k, 2 * step, left, gc, gs); /* dout row: 2d wide */
  float cs[V], sn[V];
  angles<V, BWD_THREADS>(a, g, it, valid, false, cs, sn); /* while the loads fly */
  for (;;) {
#pragma unroll
    for (int u = 0; u < BU; u++) {
      if (u >= left) break;
      float c[V], s[V], dx[V];
      unpack<V, DT, VEC>(gc[u], c);
      unpack<V, DT, VEC>(gs[u], s);
#pragma unroll
      for (int e = 0; e < V; e++) dx[e] = fmaf(c[e], cs[e], s[e] * sn[e]);
      st<V, DT, VEC>(a.out, i + u * step, it.nv, dx);
    }
    left -= BU;
    if (left <= 0) break;
    i += BU * step;
    ld_bwd<V, DT, VEC>(a, g, it, 2 * i - it.k, 2 * step, left, gc, gs);
  }
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
/* Threads the launch aims at. Y (threads per item) is the smallest of 1, 2, 4, 8 with
 * h*n*groups*Y >= TARGET_THREADS, kept <= b (every thread gets a batch row) and dividing the
 * block. An item's Y threads share its sin/cos and take every Y-th batch row, ceil(b/Y) at
 * most, so the sin/cos work does not grow with Y: only a barrier and the shared-memory
 * exchange do. The old split (batch chunks over grid y, each forming the sin/cos again) made
 * that work, not memory, bound short sequences (ncu, H200, n=256: 60% of the issue slots,
 * 13% of DRAM), so it stopped at 2^17 threads, about one wave of resident threads on an
 * H200 (132 SMs x 1024 in the 64-register forward, x 768 in the 80-register backward). With
 * the sin/cos shared, 2^18 gives two to three waves and more loads in flight: at b=12 h=12
 * d=128 (16 groups of 8 columns) n=256 gets Y=8 (1 or 2 rows per thread), n=512 Y=4 (3
 * rows), n=1024 Y=2 (6 rows), each 3*2^17 threads, and n >= 2048 Y=1: the launch of before
 * (one chunk, no barrier). The harness's -DTARGET_THREADS=... moves the whole ladder.
 * Only where even Y = 8 falls short (h*n*groups < TARGET_THREADS/8) and the batch is large
 * is it also cut into chunks over grid y, each forming its own sin/cos again: no more than
 * needed to reach TARGET_THREADS and no more than b/(Y*BU), so every thread keeps BU rows in
 * flight and the repeats cost at most one sincosf per Y*BU rows of a column. */
#ifndef TARGET_THREADS
#define TARGET_THREADS ((int64_t)1 << 18)
#endif

/* th: threads per block; *ny: Y. */
static lrpe_geom geom(const pcu_lrpe_args *a, int V, int th, int *ny) {
  lrpe_geom g;
  uint32_t st = 1;
  for (int i = 7; i >= 0; i--) {
    g.shape[i] = i < a->ndims ? (uint32_t)a->shape[i] : 1u;
    g.stride[i] = st;
    if (i < a->ndims) st *= g.shape[i];
  }
  g.d = (int)a->d; g.e = (int)a->e; g.extra = (int)a->extra_tokens; g.n = (int)a->n; g.h = (int)a->h;
  g.groups = (int)((a->d + V - 1) / V);
  const int64_t items = a->h * a->n * g.groups;
  int y = 1;
  while (y < 8 && th % (2 * y) == 0 && 2 * y <= a->b && items * y < TARGET_THREADS) y *= 2;
  *ny = y;
  int64_t chunks = 1;
  if (items * y < TARGET_THREADS) {
    chunks = (TARGET_THREADS + items * y - 1) / (items * y);
    const int64_t most = a->b / ((int64_t)y * BU);
    if (chunks > most) chunks = most;
    if (chunks > 65535) chunks = 65535; /* grid y */
    if (chunks < 1) chunks = 1;
  }
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
  const int th = fwd ? FWD_THREADS : BWD_THREADS;
  int y;
  const lrpe_geom g = geom(a, V, th, &y);
  const int tx = th / y;
  const int64_t items = a->h * a->n * g.groups, chunks = (a->b + g.bc - 1) / g.bc;
  const int64_t bx = (items + tx - 1) / tx;
  if (bx > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  const dim3 grid((unsigned)bx, (unsigned)chunks), block((unsigned)tx, (unsigned)y);
  const bool narrow = bx * tx < ((int64_t)1 << 32);
  if (fwd) {
    if (narrow) k_lrpe_fwd<V, DT, VEC, uint32_t><<<grid, block, 0, s>>>(*a, g);
    else k_lrpe_fwd<V, DT, VEC, uint64_t><<<grid, block, 0, s>>>(*a, g);
  } else {
    if (narrow) k_lrpe_bwd<V, DT, VEC, uint32_t><<<grid, block, 0, s>>>(*a, g);
    else k_lrpe_bwd<V, DT, VEC, uint64_t><<<grid, block, 0, s>>>(*a, g);
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

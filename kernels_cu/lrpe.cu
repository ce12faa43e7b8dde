/* md_lrpe_cosine forward and backward (SPEC.md section 6). One thread per (head, row, group
 * of 8 (or 4) columns): it forms the angles once (one exact f32 multiply each, accurate
 * sincosf: angles reach 1e5 rad, so no fast-math intrinsics) and applies them to every batch
 * element of its batch chunk (the whole batch unless the grid would be too small to fill
 * the device), with 16-byte vector loads and stores when the rows are aligned.
 * Parallel to kernels_cl/lrpe.cl. */
#include "common.cuh"

#define THREADS 256

typedef struct lrpe_geom {
  uint32_t shape[8];
  uint32_t stride[8]; /* product of the later axes' extents */
  int d, e, extra, v; /* as ints: the host checked n < 2^31; v: columns per thread */
  int64_t groups;     /* column groups per row */
  int64_t bc;         /* batches per chunk */
} lrpe_geom;

/* V consecutive elements from row-relative index i of m; vec: 16-byte aligned vectors. */
template <int V> __device__ __forceinline__ void ldv(const pcu_mat &m, int64_t i, bool vec, float *x) {
  if (vec) {
    if (m.dtype == PCU_F32) {
#pragma unroll
      for (int q = 0; q < V / 4; q++) {
        float4 t = *(const float4 *)((const float *)m.buf + m.offset + i + 4 * q);
        x[4 * q] = t.x; x[4 * q + 1] = t.y; x[4 * q + 2] = t.z; x[4 * q + 3] = t.w;
      }
    } else {
      uint32_t w[V / 2];
      if (V == 8) {
        uint4 t = *(const uint4 *)((const uint16_t *)m.buf + m.offset + i);
        w[0] = t.x; w[1] = t.y; w[2 % (V / 2)] = t.z; w[3 % (V / 2)] = t.w;
      } else {
        uint2 t = *(const uint2 *)((const uint16_t *)m.buf + m.offset + i);
        w[0] = t.x; w[1] = t.y;
      }
#pragma unroll
      for (int e = 0; e < V; e++) {
        uint16_t h = (uint16_t)(e & 1 ? w[e / 2] >> 16 : w[e / 2] & 0xffffu);
        x[e] = m.dtype == PCU_F16 ? pcu_f16_to_f32(h) : pcu_bf16_to_f32(h);
      }
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < V; e++) x[e] = pcu_load(m.buf, m.dtype, m.offset + i + e);
}

__device__ __forceinline__ uint32_t to16(int dt, float x) { return dt == PCU_F16 ? pcu_f32_to_f16(x) : pcu_f32_to_bf16(x); }

template <int V> __device__ __forceinline__ void stv(const pcu_mat &m, int64_t i, bool vec, const float *x) {
  if (vec) {
    if (m.dtype == PCU_F32) {
#pragma unroll
      for (int q = 0; q < V / 4; q++)
        *(float4 *)((float *)m.buf + m.offset + i + 4 * q) = make_float4(x[4 * q], x[4 * q + 1], x[4 * q + 2], x[4 * q + 3]);
    } else {
      uint32_t w[V / 2];
#pragma unroll
      for (int e = 0; e < V / 2; e++) w[e] = to16(m.dtype, x[2 * e]) | (to16(m.dtype, x[2 * e + 1]) << 16);
      if (V == 8) *(uint4 *)((uint16_t *)m.buf + m.offset + i) = make_uint4(w[0], w[1], w[2 % (V / 2)], w[3 % (V / 2)]);
      else *(uint2 *)((uint16_t *)m.buf + m.offset + i) = make_uint2(w[0], w[1]);
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < V; e++) pcu_store(m.buf, m.dtype, m.offset + i + e, x[e]);
}

/* Element-wise tail of a row (fewer than V columns left). */
template <int V> __device__ __forceinline__ void ld_tail(const pcu_mat &m, int64_t i, int nv, float *x) {
#pragma unroll
  for (int e = 0; e < V; e++) x[e] = e < nv ? pcu_load(m.buf, m.dtype, m.offset + i + e) : 0.0f;
}
template <int V> __device__ __forceinline__ void st_tail(const pcu_mat &m, int64_t i, int nv, const float *x) {
#pragma unroll
  for (int e = 0; e < V; e++)
    if (e < nv) pcu_store(m.buf, m.dtype, m.offset + i + e, x[e]);
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

/* Batches are processed BU at a time with every load issued before the first store, so
 * each thread keeps several 16-byte loads in flight (the op is memory-bound). */
#define BU 4

/* Thread idx = (chunk, row = hh*n + t, column group): chunk picks batches
 * [chunk*bc, chunk*bc + bc). sin and cos of the thread's V angles are formed once (one
 * sincosf at a time, through shared memory, so the accurate sincosf's large code does not
 * multiply register pressure) and reused for every batch of the chunk. */
struct lrpe_item {
  int64_t row, b0, b1;
  int hh, t, k, nv;
};

__device__ __forceinline__ lrpe_item item(const pcu_lrpe_args &a, const lrpe_geom &g, int64_t idx) {
  lrpe_item it;
  const int64_t rg = a.h * a.n * g.groups;
  const int64_t chunk = idx / rg, rem = idx - chunk * rg;
  it.row = rem / g.groups;
  it.k = (int)(rem - it.row * g.groups) * g.v;
  it.hh = (int)(it.row / a.n);
  it.t = (int)(it.row - (int64_t)it.hh * a.n);
  it.nv = min(g.v, g.d - it.k);
  it.b0 = chunk * g.bc;
  it.b1 = min(a.b, it.b0 + g.bc);
  return it;
}

template <int V>
__global__ void __launch_bounds__(THREADS) k_lrpe_fwd(pcu_lrpe_args a, lrpe_geom g, bool vec, int64_t total) {
  __shared__ float sc[2][V][THREADS];
  PCU_FOR(idx, total) {
    const lrpe_item it = item(a, g, idx);
    const bool first = it.b0 == 0; /* one chunk writes the angle cache */
#pragma unroll 1
    for (int e = 0; e < V; e++) {
      const float ang = e < it.nv ? angle(a, g, it.hh, it.t, it.k + e) : 0.0f;
      float sv, cv;
      sincosf(ang, &sv, &cv);
      sc[0][e][threadIdx.x] = cv;
      sc[1][e][threadIdx.x] = sv;
      if (a.cache.buf && first && e < it.nv) ((float *)a.cache.buf)[a.cache.offset + it.row * g.d + it.k + e] = ang;
    }
    float cs[V], sn[V];
#pragma unroll
    for (int e = 0; e < V; e++) { cs[e] = sc[0][e][threadIdx.x]; sn[e] = sc[1][e][threadIdx.x]; }
    const int64_t bstride = a.h * a.n;
    for (int64_t b0 = it.b0; b0 < it.b1; b0 += BU) {
      float x[BU][V];
#pragma unroll
      for (int u = 0; u < BU; u++) {
        if (b0 + u >= it.b1) break;
        const int64_t r = (b0 + u) * bstride + it.row;
        if (it.nv == V) ldv<V>(a.in, r * g.d + it.k, vec, x[u]);
        else ld_tail<V>(a.in, r * g.d + it.k, it.nv, x[u]);
      }
#pragma unroll
      for (int u = 0; u < BU; u++) {
        if (b0 + u >= it.b1) break;
        const int64_t r = (b0 + u) * bstride + it.row;
        float yc[V], ys[V];
#pragma unroll
        for (int e = 0; e < V; e++) { yc[e] = x[u][e] * cs[e]; ys[e] = x[u][e] * sn[e]; }
        if (it.nv == V) {
          stv<V>(a.out, r * 2 * g.d + it.k, vec, yc);
          stv<V>(a.out, r * 2 * g.d + g.d + it.k, vec, ys);
        } else {
          st_tail<V>(a.out, r * 2 * g.d + it.k, it.nv, yc);
          st_tail<V>(a.out, r * 2 * g.d + g.d + it.k, it.nv, ys);
        }
      }
    }
  }
}

template <int V>
__global__ void __launch_bounds__(THREADS) k_lrpe_bwd(pcu_lrpe_args a, lrpe_geom g, bool vec, int64_t total) {
  __shared__ float sc[2][V][THREADS];
  PCU_FOR(idx, total) {
    const lrpe_item it = item(a, g, idx);
#pragma unroll 1
    for (int e = 0; e < V; e++) {
      float ang = 0.0f;
      if (e < it.nv)
        ang = a.cache.buf ? ((const float *)a.cache.buf)[a.cache.offset + it.row * g.d + it.k + e]
                          : angle(a, g, it.hh, it.t, it.k + e);
      float sv, cv;
      sincosf(ang, &sv, &cv);
      sc[0][e][threadIdx.x] = cv;
      sc[1][e][threadIdx.x] = sv;
    }
    float cs[V], sn[V];
#pragma unroll
    for (int e = 0; e < V; e++) { cs[e] = sc[0][e][threadIdx.x]; sn[e] = sc[1][e][threadIdx.x]; }
    const int64_t bstride = a.h * a.n;
    for (int64_t b0 = it.b0; b0 < it.b1; b0 += BU) {
      float gc[BU][V], gs[BU][V];
#pragma unroll
      for (int u = 0; u < BU; u++) {
        if (b0 + u >= it.b1) break;
        const int64_t r = (b0 + u) * bstride + it.row;
        if (it.nv == V) {
          ldv<V>(a.in, r * 2 * g.d + it.k, vec, gc[u]);
          ldv<V>(a.in, r * 2 * g.d + g.d + it.k, vec, gs[u]);
        } else {
          ld_tail<V>(a.in, r * 2 * g.d + it.k, it.nv, gc[u]);
          ld_tail<V>(a.in, r * 2 * g.d + g.d + it.k, it.nv, gs[u]);
        }
      }
#pragma unroll
      for (int u = 0; u < BU; u++) {
        if (b0 + u >= it.b1) break;
        const int64_t r = (b0 + u) * bstride + it.row;
        float dx[V];
#pragma unroll
        for (int e = 0; e < V; e++) dx[e] = fmaf(gc[u][e], cs[e], gs[u][e] * sn[e]);
        if (it.nv == V) stv<V>(a.out, r * g.d + it.k, vec, dx);
        else st_tail<V>(a.out, r * g.d + it.k, it.nv, dx);
      }
    }
  }
}

/* Threads wanted in flight: enough to fill an H100/H200-class device with a few waves. */
#define TARGET_THREADS ((int64_t)1 << 19)

static lrpe_geom geom(const pcu_lrpe_args *a, int V) {
  lrpe_geom g;
  uint32_t st = 1;
  for (int i = 7; i >= 0; i--) {
    g.shape[i] = i < a->ndims ? (uint32_t)a->shape[i] : 1u;
    g.stride[i] = st;
    if (i < a->ndims) st *= g.shape[i];
  }
  g.d = (int)a->d; g.e = (int)a->e; g.extra = (int)a->extra_tokens; g.v = V;
  g.groups = (a->d + V - 1) / V;
  /* short sequences: split the batch so the grid still fills the device (sin/cos are then
   * formed once per chunk instead of once per (head, row)) */
  const int64_t rows = a->h * a->n * g.groups;
  int64_t chunks = (TARGET_THREADS + rows - 1) / rows;
  if (chunks > a->b) chunks = a->b;
  if (chunks < 1) chunks = 1;
  g.bc = (a->b + chunks - 1) / chunks;
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

template <int V> static void launch_v(cudaStream_t s, const pcu_lrpe_args *a, bool fwd) {
  const lrpe_geom g = geom(a, V);
  const int64_t chunks = (a->b + g.bc - 1) / g.bc, total = chunks * a->h * a->n * g.groups;
  const bool vec = mat_vec(a->in, a->d, V) && mat_vec(a->out, a->d, V);
  if (fwd) k_lrpe_fwd<V><<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(*a, g, vec, total);
  else k_lrpe_bwd<V><<<pcu_blocks(total, THREADS), THREADS, 0, s>>>(*a, g, vec, total);
}

static int launch(cudaStream_t s, const pcu_lrpe_args *a, bool fwd) {
  if (a->h * a->n * a->d <= 0 || a->b <= 0) return 0;
  if (a->d % 8 == 0) launch_v<8>(s, a, fwd);
  else launch_v<4>(s, a, fwd);
  return (int)cudaGetLastError();
}

extern "C" int pcu_lrpe_forward(cudaStream_t s, const pcu_lrpe_args *a) { return launch(s, a, true); }
extern "C" int pcu_lrpe_backward(cudaStream_t s, const pcu_lrpe_args *a) { return launch(s, a, false); }

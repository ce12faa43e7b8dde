/* Device helpers shared by every pattn CUDA kernel: dtype loads and stores (f32 arithmetic,
 * round-to-nearest-even stores, bit-identical to src/dtype.h), view indexing, and the
 * launch conventions (1-D grids with grid-stride loops, so sizes beyond 65535 blocks of a
 * 2-D grid work). Kernels never use fast-math intrinsics: masking with -inf and LRPE's
 * large angles need IEEE behaviour. */
#ifndef PATTN_CU_COMMON_CUH
#define PATTN_CU_COMMON_CUH

#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>

#include "cuda_kernels.h"

#define PCU_INF __int_as_float(0x7f800000)

__device__ __forceinline__ float pcu_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

__device__ __forceinline__ uint16_t pcu_f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

__device__ __forceinline__ float pcu_f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
/* __float2half_rn rounds to nearest even, subnormals and overflow to inf included. */
__device__ __forceinline__ uint16_t pcu_f32_to_f16(float f) { return __half_as_ushort(__float2half_rn(f)); }

/* Element i of a buffer in dtype dt (dt is uniform across a launch, so the switch does not
 * diverge). */
__device__ __forceinline__ float pcu_load(const void *base, int dt, int64_t i) {
  if (dt == PCU_F16) return pcu_f16_to_f32(((const uint16_t *)base)[i]);
  if (dt == PCU_BF16) return pcu_bf16_to_f32(((const uint16_t *)base)[i]);
  return ((const float *)base)[i];
}

__device__ __forceinline__ void pcu_store(void *base, int dt, int64_t i, float x) {
  if (dt == PCU_F16) ((uint16_t *)base)[i] = pcu_f32_to_f16(x);
  else if (dt == PCU_BF16) ((uint16_t *)base)[i] = pcu_f32_to_bf16(x);
  else ((float *)base)[i] = x;
}

/* N (1, 2 or 4) consecutive floats of shared memory at p (aligned to 4N bytes) as one load. */
template <int N> __device__ __forceinline__ void pcu_lds(const float *p, float *x) {
  if (N == 4) { float4 t = *(const float4 *)p; x[0] = t.x; x[1] = t.y; x[2] = t.z; x[3] = t.w; }
  else if (N == 2) { float2 t = *(const float2 *)p; x[0] = t.x; x[1] = t.y; }
  else x[0] = *p;
}

/* Row start (column 0) of element (ib, is, ih, i) of a view. */
__device__ __forceinline__ int64_t pcu_row(const pcu_view &v, int64_t ib, int64_t is, int64_t ih, int64_t i) {
  return v.offset + ib * v.sb + is * v.ss + ih * v.sh + i * v.sn;
}

/* Where a fused backward writes row r of dK (v = 0) or dV (v = 1) of plane p (unit within the
 * chunk * hq + query head): the gradient view itself where the host gave one (a.gk, a.gv),
 * else the f32 workspace [nu][hq][nk][d]. Element c of the row is at buf[off + c] in dtype dt. */
struct pcu_grad_row {
  void   *buf;
  int     dt;
  int64_t off;
};
__device__ __forceinline__ pcu_grad_row pcu_bwd_grad_row(const pcu_flash_bwd_args &a, int v, int64_t p, int64_t r) {
  const pcu_view &g = v ? a.gv : a.gk;
  pcu_grad_row o;
  if (g.buf) {
    const int64_t hq = a.q.nh, u = a.u0 + p / hq;
    o.buf = g.buf;
    o.dt = g.dtype;
    o.off = pcu_row(g, u / g.ns, u % g.ns, p % hq, r);
  } else {
    o.buf = v ? a.dv : a.dk;
    o.dt = PCU_F32;
    o.off = (p * a.k.n + r) * (v ? a.v.d : a.k.d);
  }
  return o;
}
/* Elements c, c+1 of such a row (c even; the host's even row starts make the pair 4- or
 * 8-byte aligned in every dtype, the workspace's d being even where a kernel stores pairs). */
__device__ __forceinline__ void pcu_store_pair(const pcu_grad_row &o, int64_t c, float x0, float x1) {
  if (o.dt == PCU_F32) {
    *(float2 *)((float *)o.buf + o.off + c) = make_float2(x0, x1);
  } else {
    const uint32_t lo = o.dt == PCU_F16 ? pcu_f32_to_f16(x0) : pcu_f32_to_bf16(x0);
    const uint32_t hi = o.dt == PCU_F16 ? pcu_f32_to_f16(x1) : pcu_f32_to_bf16(x1);
    *(uint32_t *)((uint16_t *)o.buf + o.off + c) = lo | (hi << 16);
  }
}

/* cp.async (sm_80 and newer), shared by the flash kernels: 16 bytes global -> shared at the
 * shared-space address dst, the first `bytes` read and the rest zero-filled (0: src not
 * read); commit a group; wait until at most N committed groups are in flight. On older
 * architectures they compile to nothing: callers use them only where __CUDA_ARCH__ >= 800. */
__device__ __forceinline__ void pcu_cp_async16(uint32_t dst, const void *src, int bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes) : "memory");
#else
  (void)dst; (void)src; (void)bytes;
#endif
}
__device__ __forceinline__ void pcu_cp_async16(void *dst, const void *src, int bytes) {
  pcu_cp_async16((uint32_t)__cvta_generic_to_shared(dst), src, bytes);
}
__device__ __forceinline__ void pcu_cp_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void pcu_cp_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

/* A flash block's tile from its index bid (blockIdx.x, or a persistent block's work item) =
 * ((ib*ns + is)*hq + ih)*nqt + (nqt-1-qt), so the longest causal tiles start first; kh is the
 * kv head of query head ih (GQA). I: the index type (int in flash_wgmma.cu, whose host keeps
 * every count below 2^30; flash_mma.cu still decodes the same in its own lines, kept for their
 * register allocation). */
template <class I> struct pcu_flash_tile_t {
  I qt, ih, is, ib, kh;
};
typedef pcu_flash_tile_t<int64_t> pcu_flash_tile;
template <class I = int64_t>
__device__ __forceinline__ pcu_flash_tile_t<I> pcu_flash_tile_of(const pcu_flash_args &a, int64_t nqt, I bid) {
  pcu_flash_tile_t<I> t;
  const I n = (I)nqt, hq = (I)a.q.nh, ns = (I)a.q.ns;
  t.qt = n - 1 - bid % n;
  bid /= n;
  t.ih = bid % hq;
  bid /= hq;
  t.is = bid % ns;
  t.ib = bid / ns;
  t.kh = t.ih / (hq / (I)a.k.nh);
  return t;
}
template <class I = int64_t>
__device__ __forceinline__ pcu_flash_tile_t<I> pcu_flash_tile_of(const pcu_flash_args &a, int64_t nqt) {
  return pcu_flash_tile_of<I>(a, nqt, (I)blockIdx.x);
}

/* The exponent e of the power of two that pcu_f16_tiles applies to a tile whose largest finite
 * magnitude is mx: 2^e mx lies in [2^14, 2^15), so every finite value fits f16 (largest
 * 65504) with f16's 11 significant bits down to 2^-28 of the largest (below that, subnormals:
 * an absolute error of at most 2^-40 of it). 0 for a tile of zeros; at most 100, so that 2^-e
 * is a normal f32 (tiles below 2^-86 keep fewer bits). */
__device__ __forceinline__ int pcu_f16_exp(float mx) { return mx > 0.0f ? min(14 - ilogbf(mx), 100) : 0; }

/* Grid-stride loop over [0, n) with 64-bit indices. */
#define PCU_FOR(idx, n) \
  for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < (n); idx += (int64_t)gridDim.x * blockDim.x)

/* Under NVRTC. CUDA 13's nvcc cannot target the GTX 1080 (sm_61), so CI compiles every .cu
 * file here for sm_61 with NVRTC 12 from PyPI (tools/check-cuda-archs-nvrtc.py).
 * NVRTC defines __CUDACC_RTC__, compiles device code only and emits a kernel template only
 * where it is instantiated, so each .cu file keeps two rules:
 *  - host code (launchers, cudaFuncSetAttribute, tables of kernel pointers, pick functions,
 *    host-only includes such as <stdlib.h>) sits in #ifndef __CUDACC_RTC__ blocks;
 *  - every variant of a kernel template that the host side uses is listed once, in an
 *    X-macro, e.g. #define FOO_VARIANTS(X) X(64, 4) X(128, 2), which expands both into the
 *    host table or dispatch and, in an #ifdef __CUDACC_RTC__ block, into explicit
 *    instantiations: template __global__ void k_foo<64, 4>(args...); never a second list.
 * The checker compares each file's NVRTC kernels with nvcc's own build of the file (which
 * instantiates what the host side launches), so a variant the NVRTC side lacks fails CI. */
#ifndef __CUDACC_RTC__
#include <stdlib.h>

/* Blocks for a grid-stride launch of n items: enough to fill the device, capped so the
 * 1-D grid never exceeds its limit. */
static inline unsigned pcu_blocks(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535 * 64) b = 65535 * 64;
  return (unsigned)b;
}

/* Before launching `kernel` with `smem` bytes of dynamic shared memory: beyond 48 KB the
 * limit must be raised, and the largest carveout is asked for (several blocks per
 * multiprocessor need it; a refusal of that hint is harmless and must not linger as the
 * launch's error). cudaSuccess or the error of raising the limit. */
static inline cudaError_t pcu_prepare_smem(const void *kernel, size_t smem) {
  if (smem <= 48 * 1024) return cudaSuccess;
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
  if (e != cudaSuccess) return e;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, (int)cudaSharedmemCarveoutMaxShared) !=
      cudaSuccess)
    (void)cudaGetLastError();
  return cudaSuccess;
}

/* Elements of view v. */
static inline int64_t pcu_view_count(const pcu_view &v) { return v.nb * v.ns * v.nh * v.n * v.d; }

/* The view of like's batches, segments, heads and rows over dense [nb][ns][nh][n][d] of dtype
 * at buf (a workspace copy or partial result). */
static inline pcu_view pcu_dense_view(void *buf, int dtype, const pcu_view &like, int64_t d) {
  pcu_view w = like;
  w.buf = buf;
  w.dtype = dtype;
  w.offset = 0;
  w.d = d;
  w.sn = d;
  w.sh = w.n * w.sn;
  w.ss = w.nh * w.sh;
  w.sb = w.ns * w.ss;
  return w;
}

/* Every row start of v (all batches, segments and heads) on a multiple of `align` bytes, for
 * elements of `esize` bytes: the condition of the flash kernels' vector loads. */
static inline int pcu_rows_aligned(const pcu_view &v, int esize, int align) {
  const int64_t m = align / esize;
  return ((uintptr_t)v.buf % (uintptr_t)align) == 0 && v.offset % m == 0 && v.sn % m == 0 && (v.nh <= 1 || v.sh % m == 0) &&
         (v.ns <= 1 || v.ss % m == 0) && (v.nb <= 1 || v.sb % m == 0);
}

/* What the tensor-core flash forwards with 32-bit index arithmetic (flash_mma.cu,
 * flash_wgmma.cu, flash_wgmma_f32.cu) need of the shape: dense (no block-sparse layout),
 * whole GQA groups, and lengths, query heads and segments each < 2^30. */
static inline int pcu_flash_tc_shape(const pcu_flash_args *a) {
  const int64_t lim = (int64_t)1 << 30;
  return !a->layout && a->q.n < lim && a->k.n < lim && a->k.nh > 0 && a->q.nh % a->k.nh == 0 && a->q.nh < lim &&
         a->q.ns < lim;
}

/* The 16-bit ones (flash_mma.cu, flash_wgmma.cu): that shape and q, k, v of one 16-bit dtype. */
static inline int pcu_flash_tc_args(const pcu_flash_args *a) {
  const int dt = a->q.dtype;
  return pcu_flash_tc_shape(a) && (dt == PCU_F16 || dt == PCU_BF16) && a->k.dtype == dt && a->v.dtype == dt;
}

/* The padded head dim of the flash kernels' tables: the smallest power of two >= 32 holding dmax. */
static inline int pcu_head_dim_pad(int64_t dmax) {
  int d = 32;
  while (d < dmax) d *= 2;
  return d;
}

/* The padded head dim of a backward that both fused backward kernels can run: 32-bit rows,
 * heads and (unit, head) planes (each < 2^30), k's head dim that of q, dout's that of v, head
 * dims 1..256. 0 where they cannot. */
static inline int pcu_bwd_head_dim(const pcu_flash_bwd_args *a) {
  const int64_t lim = (int64_t)1 << 30;
  if (a->q.n >= lim || a->k.n >= lim || a->k.nh <= 0 || a->q.nh % a->k.nh != 0 || a->q.nh >= lim || a->q.ns <= 0 ||
      a->q.d <= 0 || a->v.d <= 0 || a->k.d != a->q.d || a->dout.d != a->v.d || a->nu * a->q.nh >= lim)
    return 0;
  const int64_t dmax = a->q.d > a->v.d ? a->q.d : a->v.d;
  return dmax > 256 ? 0 : pcu_head_dim_pad(dmax);
}

/* j <= i + off for i in [0, nq), j in [0, nk) is the same for every off <= -nq and every
 * off >= nk: clamped there, the kernels' 32-bit sums of rows and offsets cannot overflow. */
static inline int64_t pcu_clamp_causal(int64_t off, int64_t nq, int64_t nk) {
  return off < -nq ? -nq : off > nk ? nk : off;
}

/* Whether a's query tiles of bm rows, over all (batch, segment, head) units, number at most
 * half the multiprocessors: there the wgmma forwards take blocks of 64 query rows instead
 * (flash_wgmma.cu's one consumer, flash_wgmma_f32.cu's 64-row variants), so that twice the
 * blocks fill idle multiprocessors. */
static inline bool pcu_small_grid(const pcu_flash_args *a, int64_t bm) {
  return a->num_sms > 0 && 2 * ((a->q.n + bm - 1) / bm) * a->q.nb * a->q.ns * a->q.nh <= a->num_sms;
}

/* A tuning override read on every call (a non-negative index), 0 when unset or name is NULL. */
static inline int pcu_env_index(const char *name) {
  const char *e = name ? getenv(name) : NULL;
  return e && *e >= '0' && *e <= '9' ? atoi(e) : 0;
}

/* Of the table's rows for padded head dim d (contiguous, in order of preference), the index of
 * the one at $env (a tuning override; env NULL: none) if fits(row), else of the first that fits; -1
 * if none. */
template <class T, class Fits>
static inline int pcu_pick_variant(const T *tab, int n, int d, const char *env, Fits fits) {
  int first = -1, count = 0;
  for (int i = 0; i < n; i++)
    if (tab[i].d == d) {
      if (first < 0) first = i;
      count++;
    }
  if (first < 0) return -1;
  const int start = pcu_env_index(env);
  if (start < count && fits(tab[first + start])) return first + start;
  for (int i = first; i < first + count; i++)
    if (fits(tab[i])) return i;
  return -1;
}
#endif

#endif /* PATTN_CU_COMMON_CUH */

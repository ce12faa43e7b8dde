/* Fused tiled attention with an online softmax (FlashAttention-2 style), f32 arithmetic with
 * FMA: every dtype on every architecture, and the f32 path everywhere. One 128-thread block
 * computes BM query rows of one (batch, segment, head) against kv tiles of BN keys; never
 * n^2 memory. The same kernel serves block-sparse attention: it then visits only the kv
 * tiles listed for its query tile (CSR built by the host from the layout) and checks the
 * layout bit per score, so work scales with the active blocks.
 *
 * Thread (ty, tx) = (tid / 8, tid % 8) owns rows ty*RM .. ty*RM+RM-1 of the tile, score
 * columns (c/4)*32 + tx*4 + c%4 and output columns likewise; the 8 threads of a row group
 * are adjacent lanes, so row max and sum are 3 shuffles. Q and K are kept transposed in
 * shared memory so both operands of the score product are vector loads.
 * Parallel to kernels_cl/flash.cl. */
#include "common.cuh"

#define FLASH_THREADS 128

template <int D, int RM, int BN, bool SHARE> struct FlashCfg {
  static constexpr int BM = 16 * RM;
  static constexpr int QP = BM + 4; /* +4: transposed stores spread over banks, rows stay 16-byte aligned */
  static constexpr int KP = BN + 4;
  static constexpr int PP = BM + 4;
  static constexpr int CN = BN / 8;
  static constexpr int ON = D / 8;
  static constexpr int Q_FL = D * QP;
  static constexpr int K_FL = D * KP;
  static constexpr int V_FL = BN * D;
  static constexpr int P_FL = BN * PP;
  static constexpr int KV_FL = SHARE ? (K_FL > V_FL ? K_FL : V_FL) : K_FL + V_FL;
  static constexpr size_t SMEM = (size_t)(Q_FL + KV_FL + P_FL) * sizeof(float);
};

/* Four consecutive elements from index i; `n` of them valid (the rest read as 0). vec: the
 * launch checked that every row start is 4-element aligned. */
__device__ __forceinline__ void load4(const void *buf, int dt, int64_t i, int n, bool vec, float *x) {
  if (vec && n == 4) {
    if (dt == PCU_F32) {
      float4 t = *(const float4 *)((const float *)buf + i);
      x[0] = t.x; x[1] = t.y; x[2] = t.z; x[3] = t.w;
    } else {
      uint2 t = *(const uint2 *)((const uint16_t *)buf + i);
      uint16_t h[4] = {(uint16_t)(t.x & 0xffffu), (uint16_t)(t.x >> 16), (uint16_t)(t.y & 0xffffu), (uint16_t)(t.y >> 16)};
#pragma unroll
      for (int e = 0; e < 4; e++) x[e] = dt == PCU_F16 ? pcu_f16_to_f32(h[e]) : pcu_bf16_to_f32(h[e]);
    }
    return;
  }
#pragma unroll
  for (int e = 0; e < 4; e++) x[e] = e < n ? pcu_load(buf, dt, i + e) : 0.0f;
}

/* Rows r0.. of a [rows][D] tile (cols < dcols valid, rows < nrows valid) from a view's
 * rows starting at element `base` with stride sn, into shared memory: transposed
 * (dst[c*pitch + r]) or straight (dst[r*D + c]). */
template <int D, bool TRANSPOSE>
__device__ __forceinline__ void load_tile(float *dst, int pitch, int rows, const pcu_view &v, int64_t base,
                                          int64_t nrows, int64_t dcols, float mul, bool vec) {
  constexpr int TPR = D / 4;                 /* threads per row, 4 columns each */
  constexpr int RPP = FLASH_THREADS / TPR;   /* rows per pass */
  const int c = (threadIdx.x % TPR) * 4;
  for (int r = threadIdx.x / TPR; r < rows; r += RPP) {
    float x[4];
    int n = r < nrows ? (int)min((int64_t)4, max((int64_t)0, dcols - c)) : 0;
    load4(v.buf, v.dtype, base + (int64_t)r * v.sn + c, n, vec, x);
#pragma unroll
    for (int e = 0; e < 4; e++) {
      if (TRANSPOSE) dst[(c + e) * pitch + r] = x[e] * mul;
      else dst[r * D + c + e] = x[e] * mul;
    }
  }
}

template <int N> __device__ __forceinline__ void lds(const float *p, float *x) {
  if (N == 4) { float4 t = *(const float4 *)p; x[0] = t.x; x[1] = t.y; x[2] = t.z; x[3] = t.w; }
  else if (N == 2) { float2 t = *(const float2 *)p; x[0] = t.x; x[1] = t.y; }
  else x[0] = *p;
}

template <int D, int RM, int BN, bool SHARE>
__global__ void __launch_bounds__(FLASH_THREADS) k_flash(pcu_flash_args a, int64_t nqt, int vecq, int veck, int vecv) {
  typedef FlashCfg<D, RM, BN, SHARE> C;
  constexpr int BM = C::BM, CN = C::CN, ON = C::ON;
  extern __shared__ float4 smem4[];
  float *Qt = (float *)smem4;
  float *Kt = Qt + C::Q_FL;
  float *Vs = SHARE ? Kt : Kt + C::K_FL;
  float *Pt = Kt + C::KV_FL;

  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3;
  const int64_t nq = a.q.n, nk = a.k.n, dk = a.q.d, dv = a.v.d;
  const int64_t hq = a.q.nh, group = hq / a.k.nh;
  int64_t bid = blockIdx.x;
  const int64_t qt = nqt - 1 - bid % nqt; /* the longest causal tiles start first */
  bid /= nqt;
  const int64_t ih = bid % hq; bid /= hq;
  const int64_t is = bid % a.q.ns, ib = bid / a.q.ns;
  const int64_t kh = ih / group;
  const int64_t q0 = qt * BM;

  load_tile<D, true>(Qt, C::QP, BM, a.q, pcu_row(a.q, ib, is, ih, q0), nq - q0, dk, a.scale, vecq);
  const int64_t kbase = pcu_row(a.k, ib, is, kh, 0), vbase = pcu_row(a.v, ib, is, kh, 0);

  /* keys beyond kend are invisible to every row of the tile */
  int64_t kend = nk;
  if (a.causal) kend = min(nk, max((int64_t)0, q0 + BM + a.causal_offset));
  const int lh = a.layout_heads > 1 ? (int)ih : 0;
  int64_t t_begin = 0, t_end = (kend + BN - 1) / BN;
  if (a.layout) { t_begin = a.tile_ptr[lh * nqt + qt]; t_end = a.tile_ptr[lh * nqt + qt + 1]; }

  int64_t mrow[RM];
#pragma unroll
  for (int r = 0; r < RM; r++)
    mrow[r] = a.mask.buf ? pcu_row(a.mask, a.mask.nb > 1 ? ib : 0, 0, a.mask.nh > 1 ? ih : 0, q0 + ty * RM + r) : 0;

  float m[RM], l[RM], acc[RM][ON];
#pragma unroll
  for (int r = 0; r < RM; r++) {
    m[r] = -PCU_INF; l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < ON; c++) acc[r][c] = 0.0f;
  }

  for (int64_t it = t_begin; it < t_end; it++) {
    const int64_t k0 = (a.layout ? (int64_t)a.tile_idx[it] : it) * BN;
    if (k0 >= kend) continue; /* uniform across the block */
    __syncthreads(); /* the previous tile's products are done with Kt, Vs, Pt */
    load_tile<D, true>(Kt, C::KP, BN, a.k, kbase + k0 * a.k.sn, nk - k0, dk, 1.0f, veck);
    if (!SHARE) load_tile<D, false>(Vs, D, BN, a.v, vbase + k0 * a.v.sn, nk - k0, dv, 1.0f, vecv);
    __syncthreads();

    float s[RM][CN];
#pragma unroll
    for (int r = 0; r < RM; r++)
#pragma unroll
      for (int c = 0; c < CN; c++) s[r][c] = 0.0f;
#pragma unroll 8
    for (int c = 0; c < D; c++) {
      float qv[RM], kv[CN];
      lds<RM>(Qt + c * C::QP + ty * RM, qv);
#pragma unroll
      for (int c4 = 0; c4 < CN / 4; c4++) lds<4>(Kt + c * C::KP + c4 * 32 + tx * 4, kv + c4 * 4);
#pragma unroll
      for (int r = 0; r < RM; r++)
#pragma unroll
        for (int cc = 0; cc < CN; cc++) s[r][cc] = fmaf(qv[r], kv[cc], s[r][cc]);
    }

#pragma unroll
    for (int r = 0; r < RM; r++) {
      const int64_t i = q0 + ty * RM + r;
      float mx = -PCU_INF;
#pragma unroll
      for (int c = 0; c < CN; c++) {
        const int64_t j = k0 + (c / 4) * 32 + tx * 4 + (c % 4);
        bool vis = i < nq && j < nk && (!a.causal || j <= i + a.causal_offset);
        if (vis && a.layout) vis = a.layout[((int64_t)lh * a.nqb + i / a.block_size) * a.nkb + j / a.block_size] != 0;
        float x = s[r][c];
        if (!vis) x = -PCU_INF;
        else if (a.mask.buf) x += pcu_load(a.mask.buf, a.mask.dtype, mrow[r] + j);
        s[r][c] = x;
        mx = fmaxf(mx, x);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
      const float mnew = fmaxf(m[r], mx);
      float alpha = 1.0f, sum = 0.0f;
      if (mnew != -PCU_INF) {
        alpha = expf(m[r] - mnew); /* 0 while m[r] is still -inf */
#pragma unroll
        for (int c = 0; c < CN; c++) { s[r][c] = expf(s[r][c] - mnew); sum += s[r][c]; }
      } else {
#pragma unroll
        for (int c = 0; c < CN; c++) s[r][c] = 0.0f;
      }
      sum += __shfl_xor_sync(0xffffffffu, sum, 1);
      sum += __shfl_xor_sync(0xffffffffu, sum, 2);
      sum += __shfl_xor_sync(0xffffffffu, sum, 4);
      l[r] = l[r] * alpha + sum;
      m[r] = mnew;
#pragma unroll
      for (int c = 0; c < ON; c++) acc[r][c] *= alpha;
    }
    if (SHARE) __syncthreads(); /* scores are done with Kt before V takes its place */
#pragma unroll
    for (int c = 0; c < CN; c++) {
      float *p = Pt + ((c / 4) * 32 + tx * 4 + (c % 4)) * C::PP + ty * RM;
#pragma unroll
      for (int r = 0; r < RM; r++) p[r] = s[r][c];
    }
    if (SHARE) load_tile<D, false>(Vs, D, BN, a.v, vbase + k0 * a.v.sn, nk - k0, dv, 1.0f, vecv);
    __syncthreads();

#pragma unroll 4
    for (int j = 0; j < BN; j++) {
      float pv[RM], vv[ON];
      lds<RM>(Pt + j * C::PP + ty * RM, pv);
#pragma unroll
      for (int c4 = 0; c4 < ON / 4; c4++) lds<4>(Vs + j * D + c4 * 32 + tx * 4, vv + c4 * 4);
#pragma unroll
      for (int r = 0; r < RM; r++)
#pragma unroll
        for (int c = 0; c < ON; c++) acc[r][c] = fmaf(pv[r], vv[c], acc[r][c]);
    }
  }

#pragma unroll
  for (int r = 0; r < RM; r++) {
    const int64_t i = q0 + ty * RM + r;
    if (i >= nq) continue;
    const float inv = l[r] > 0.0f ? a.out_scale / l[r] : 0.0f;
    const int64_t orow = pcu_row(a.out, ib, is, ih, i);
#pragma unroll
    for (int c = 0; c < ON; c++) {
      const int col = (c / 4) * 32 + tx * 4 + (c % 4);
      if (col < dv) pcu_store(a.out.buf, a.out.dtype, orow + col, acc[r][c] * inv);
    }
    if (a.lse.buf && tx == 0)
      pcu_store(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, i), l[r] > 0.0f ? m[r] + logf(l[r]) : -PCU_INF);
  }
}

/* The variants, best first for each padded head dim; a device takes the first that fits
 * its shared memory (Pascal: 48 KB per block, so K and V share a buffer there). */
typedef struct flash_variant {
  int d, bm, bn;
  size_t smem;
  void (*kernel)(pcu_flash_args, int64_t, int, int, int);
} flash_variant;

#define VARIANT(D, RM, BN, SH) {D, 16 * RM, BN, FlashCfg<D, RM, BN, SH>::SMEM, k_flash<D, RM, BN, SH>}
static const flash_variant variants[] = {
  VARIANT(32, 4, 64, false),  VARIANT(32, 2, 64, false),
  VARIANT(64, 4, 64, false),  VARIANT(64, 2, 64, false),  VARIANT(64, 4, 32, true),
  VARIANT(128, 4, 32, false), VARIANT(128, 2, 32, false), VARIANT(128, 2, 32, true),
  VARIANT(256, 2, 32, false),
};

/* The first variant of the smallest padded head dim holding dk and dv that fits the shared
 * memory; with sms > 0, when that would launch fewer than two blocks per multiprocessor
 * (short sequences), a fitting variant with fewer query rows per block instead. */
static const flash_variant *pick(int64_t dk, int64_t dv, size_t smem_optin, int64_t nq, int64_t units, int sms) {
  int64_t dmax = dk > dv ? dk : dv;
  int d = 32;
  while (d < dmax) d *= 2;
  const flash_variant *first = NULL;
  for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
    const flash_variant *v = &variants[i];
    if (v->d != d || v->smem > smem_optin) continue;
    if (!first) {
      first = v;
      if (sms <= 0 || ((nq + v->bm - 1) / v->bm) * units >= 2 * (int64_t)sms) return v;
    } else if (v->bm < first->bm) {
      return v;
    }
  }
  return first;
}

extern "C" int pcu_flash_plan(int64_t dk, int64_t dv, size_t smem_optin, int *bm, int *bn) {
  const flash_variant *v = pick(dk, dv, smem_optin, 0, 0, 0);
  if (!v) return -1;
  *bm = v->bm; *bn = v->bn;
  return 0;
}

static int view_vec4(const pcu_view &v) {
  size_t bytes = v.dtype == PCU_F32 ? 4 : 2;
  bool ok = ((uintptr_t)v.buf % (4 * bytes)) == 0 && v.offset % 4 == 0 && v.sn % 4 == 0 &&
            (v.nh <= 1 || v.sh % 4 == 0) && (v.ns <= 1 || v.ss % 4 == 0) && (v.nb <= 1 || v.sb % 4 == 0);
  return ok ? 1 : 0;
}

extern "C" int pcu_flash_forward(cudaStream_t s, const pcu_flash_args *a, size_t smem_optin) {
  /* block-sparse tile lists are built for pcu_flash_plan's shape: no occupancy switch there */
  const flash_variant *v = pick(a->q.d, a->v.d, smem_optin, a->q.n, a->q.nb * a->q.ns * a->q.nh,
                                a->layout ? 0 : a->num_sms);
  if (!v) return (int)cudaErrorInvalidValue;
  const int64_t nqt = (a->q.n + v->bm - 1) / v->bm;
  const int64_t blocks = nqt * a->q.nh * a->q.ns * a->q.nb;
  if (blocks <= 0) return 0;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  if (v->smem > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute((const void *)v->kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)v->smem);
    if (e != cudaSuccess) return (int)e;
  }
  v->kernel<<<(unsigned)blocks, FLASH_THREADS, v->smem, s>>>(*a, nqt, view_vec4(a->q), view_vec4(a->k), view_vec4(a->v));
  return (int)cudaGetLastError();
}

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
 * shared memory so both operands of the score product are vector loads. k_flash2 below is
 * the pipelined form used wherever its shared memory fits; k_flash remains for the others.
 * Parallel to kernels_cl/attention_flash.cl. */
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

/* One query row's step of the online softmax over a tile's CN scores, shared by both f32
 * kernels: scores of invisible keys (out of range, causal, block-sparse layout) become -inf,
 * the additive mask is added, the running max m and sum l are updated across the 8 lanes that
 * share the row, s becomes exp(s - m) and the row's accumulator is rescaled. key(c) is the key
 * index of score c, which is where the two kernels' tile layouts differ. */
template <int CN, int ON, typename KeyOf>
__device__ __forceinline__ void online_softmax_row(const pcu_flash_args &a, int64_t i, int64_t nq, int64_t nk, int lh,
                                                   int64_t mrow, KeyOf key, float *s, float &m, float &l, float *acc) {
  float mx = -PCU_INF;
#pragma unroll
  for (int c = 0; c < CN; c++) {
    const int64_t j = key(c);
    bool vis = i < nq && j < nk && (!a.causal || j <= i + a.causal_offset);
    if (vis && a.layout) vis = a.layout[((int64_t)lh * a.nqb + i / a.block_size) * a.nkb + j / a.block_size] != 0;
    float x = s[c];
    if (!vis) x = -PCU_INF;
    else if (a.mask.buf) x += pcu_load(a.mask.buf, a.mask.dtype, mrow + j);
    s[c] = x;
    mx = fmaxf(mx, x);
  }
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 4));
  const float mnew = fmaxf(m, mx);
  float alpha = 1.0f, sum = 0.0f;
  if (mnew != -PCU_INF) {
    alpha = expf(m - mnew); /* 0 while m is still -inf */
#pragma unroll
    for (int c = 0; c < CN; c++) { s[c] = expf(s[c] - mnew); sum += s[c]; }
  } else {
#pragma unroll
    for (int c = 0; c < CN; c++) s[c] = 0.0f;
  }
  sum += __shfl_xor_sync(0xffffffffu, sum, 1);
  sum += __shfl_xor_sync(0xffffffffu, sum, 2);
  sum += __shfl_xor_sync(0xffffffffu, sum, 4);
  l = l * alpha + sum;
  m = mnew;
#pragma unroll
  for (int c = 0; c < ON; c++) acc[c] *= alpha;
}

/* The end of both f32 kernels: each of the thread's RM query rows (from row i0) divided by
 * its softmax sum and scaled by out_scale, written to out (columns (c/4)*32 + tx*4 + c%4), and
 * its logsumexp to lse; a row that saw no key gets 0 and -inf. */
template <int RM, int ON>
__device__ __forceinline__ void store_rows(const pcu_flash_args &a, int64_t i0, int tx, int64_t nq, int64_t dv, int64_t ib,
                                           int64_t is, int64_t ih, const float (&m)[RM], const float (&l)[RM],
                                           const float (&acc)[RM][ON]) {
#pragma unroll
  for (int r = 0; r < RM; r++) {
    const int64_t i = i0 + r;
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
  const pcu_flash_tile tile = pcu_flash_tile_of(a, nqt);
  const int64_t qt = tile.qt, ih = tile.ih, is = tile.is, ib = tile.ib, kh = tile.kh;
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
      pcu_lds<RM>(Qt + c * C::QP + ty * RM, qv);
#pragma unroll
      for (int c4 = 0; c4 < CN / 4; c4++) pcu_lds<4>(Kt + c * C::KP + c4 * 32 + tx * 4, kv + c4 * 4);
#pragma unroll
      for (int r = 0; r < RM; r++)
#pragma unroll
        for (int cc = 0; cc < CN; cc++) s[r][cc] = fmaf(qv[r], kv[cc], s[r][cc]);
    }

#pragma unroll
    for (int r = 0; r < RM; r++) {
      online_softmax_row<CN, ON>(a, q0 + ty * RM + r, nq, nk, lh, mrow[r],
                                 [&](int c) { return k0 + (c / 4) * 32 + tx * 4 + (c % 4); }, s[r], m[r], l[r], acc[r]);
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
      pcu_lds<RM>(Pt + j * C::PP + ty * RM, pv);
#pragma unroll
      for (int c4 = 0; c4 < ON / 4; c4++) pcu_lds<4>(Vs + j * D + c4 * 32 + tx * 4, vv + c4 * 4);
#pragma unroll
      for (int r = 0; r < RM; r++)
#pragma unroll
        for (int c = 0; c < ON; c++) acc[r][c] = fmaf(pv[r], vv[c], acc[r][c]);
    }
  }

  store_rows<RM, ON>(a, q0 + ty * RM, tx, nq, dv, ib, is, ih, m, l, acc);
}

/* ---- Pipelined variant (k_flash2): K kept row-major so tiles copy straight into shared
 * memory (cp.async on sm_80+ for aligned f32 views, plain loads elsewhere), the next K tile
 * loading during the softmax and P V, the next V tile during the next Q K^T. Thread (ty, tx)
 * owns score columns tx + 8*c (K rows 8 apart: with pitch D+4 the 8 lanes of a row group
 * read distinct banks) and the same output columns as k_flash. Q is stored transposed with
 * a mapping that keeps the stores nearly conflict-free. One K and one V buffer only, so
 * more blocks fit per multiprocessor. */

template <int D, int RM, int BN> struct Flash2Cfg {
  static constexpr int BM = 16 * RM;
  static constexpr int QP = BM;      /* transposed Q: stores 2-way conflicted once per block */
  static constexpr int KP = D + 4;   /* row-major K: +4 spreads the 8 rows a row group reads */
  static constexpr int PP = BM + 4;
  static constexpr int CN = BN / 8;
  static constexpr int ON = D / 8;
  static constexpr int Q_FL = D * QP;
  static constexpr int K_FL = BN * KP;
  static constexpr int V_FL = BN * D;
  static constexpr int P_FL = BN * PP;
  static constexpr size_t SMEM = (size_t)(Q_FL + K_FL + V_FL + P_FL) * sizeof(float);
};

/* Rows [0, rows) of a [rows][D] tile, row r at dst[r*pitch], cols < dcols and rows < nrows
 * valid, zeros elsewhere (V rows beyond the keys must be 0: P is 0 there, and 0*garbage
 * could be NaN). async: cp.async (f32, 16-byte aligned rows). */
template <int D>
__device__ __forceinline__ void load_rows(float *dst, int pitch, int rows, const pcu_view &v, int64_t base, int64_t nrows,
                                          int64_t dcols, bool vec, bool async) {
  constexpr int TPR = D / 4;
  constexpr int RPP = FLASH_THREADS / TPR;
  const int c = (threadIdx.x % TPR) * 4;
  const int nc = (int)min((int64_t)4, max((int64_t)0, dcols - c));
  for (int r = threadIdx.x / TPR; r < rows; r += RPP) {
    const int n = r < nrows ? nc : 0;
    float *d = dst + r * pitch + c;
    if (async) {
      const float *src = (const float *)v.buf + (n > 0 ? base + (int64_t)r * v.sn + c : 0);
      pcu_cp_async16(d, src, n * 4);
    } else {
      float x[4];
      load4(v.buf, v.dtype, base + (int64_t)r * v.sn + c, n, vec, x);
      *(float4 *)d = make_float4(x[0], x[1], x[2], x[3]);
    }
  }
}

/* Q tile [BM][D] transposed into dst[c*BM + r], times mul. Lanes of a warp take 16
 * consecutive rows at two column groups: the global reads are full 32-byte sectors and the
 * shared stores hit (nearly) distinct banks. */
template <int D, int BM>
__device__ __forceinline__ void load_q_t(float *dst, const pcu_view &v, int64_t base, int64_t nrows, int64_t dcols,
                                         float mul, bool vec) {
  constexpr int RG = BM / 16;
  for (int x = threadIdx.x; x < BM * (D / 4); x += FLASH_THREADS) {
    const int lo = x & 31, hi = x >> 5;
    const int r = (lo & 15) + 16 * (hi % RG);
    const int c = 4 * ((lo >> 4) + 2 * (hi / RG));
    const int n = r < nrows ? (int)min((int64_t)4, max((int64_t)0, dcols - c)) : 0;
    float q[4];
    load4(v.buf, v.dtype, base + (int64_t)r * v.sn + c, n, vec, q);
#pragma unroll
    for (int e = 0; e < 4; e++) dst[(c + e) * BM + r] = q[e] * mul;
  }
}

__device__ __forceinline__ float f4at(const float4 &v, int e) { return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w; }

template <int D, int RM, int BN>
__global__ void __launch_bounds__(FLASH_THREADS) k_flash2(pcu_flash_args a, int64_t nqt, int vecq, int veck, int vecv) {
  typedef Flash2Cfg<D, RM, BN> C;
  constexpr int BM = C::BM, CN = C::CN, ON = C::ON;
  extern __shared__ float4 smem4[];
  float *Qt = (float *)smem4;
  float *Ks = Qt + C::Q_FL;
  float *Vs = Ks + C::K_FL;
  float *Pt = Vs + C::V_FL;

  const int tid = threadIdx.x, tx = tid & 7, ty = tid >> 3;
  const int64_t nq = a.q.n, nk = a.k.n, dk = a.q.d, dv = a.v.d;
  const pcu_flash_tile tile = pcu_flash_tile_of(a, nqt);
  const int64_t qt = tile.qt, ih = tile.ih, is = tile.is, ib = tile.ib, kh = tile.kh;
  const int64_t q0 = qt * BM;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const bool async = veck && vecv && a.k.dtype == PCU_F32 && a.v.dtype == PCU_F32;
#else
  const bool async = false;
#endif

  load_q_t<D, BM>(Qt, a.q, pcu_row(a.q, ib, is, ih, q0), nq - q0, dk, a.scale, vecq);
  const int64_t kbase = pcu_row(a.k, ib, is, kh, 0), vbase = pcu_row(a.v, ib, is, kh, 0);

  /* keys at or beyond kend are invisible to every row of the tile */
  int64_t kend = nk;
  if (a.causal) kend = min(nk, max((int64_t)0, q0 + BM + a.causal_offset));
  const int lh = a.layout_heads > 1 ? (int)ih : 0;
  int64_t t_begin = 0, t_end = (kend + BN - 1) / BN;
  if (a.layout) { t_begin = a.tile_ptr[lh * nqt + qt]; t_end = a.tile_ptr[lh * nqt + qt + 1]; }
  /* first key of tile it; tile lists are ascending, so the first at or past kend ends the walk */
#define TILE_K0(it) ((it) < t_end ? (a.layout ? (int64_t)a.tile_idx[(it)] : (it)) * BN : kend)

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

  int64_t it = t_begin, k0 = TILE_K0(it);
  if (k0 < kend) {
    load_rows<D>(Ks, C::KP, BN, a.k, kbase + k0 * a.k.sn, nk - k0, dk, veck, async);
    pcu_cp_commit();
    load_rows<D>(Vs, D, BN, a.v, vbase + k0 * a.v.sn, nk - k0, dv, vecv, async);
    pcu_cp_commit();
  }
  /* Committed groups in flight at the top of each iteration: this tile's K, then its V. */
  while (k0 < kend) {
    const int64_t k0n = TILE_K0(it + 1);
    pcu_cp_wait<1>(); /* K of this tile landed */
    __syncthreads(); /* every thread's K (and, first time, Q) stores are visible */

    float s[RM][CN];
#pragma unroll
    for (int r = 0; r < RM; r++)
#pragma unroll
      for (int c = 0; c < CN; c++) s[r][c] = 0.0f;
#pragma unroll 2
    for (int d4 = 0; d4 < D / 4; d4++) {
      float4 kv[CN];
#pragma unroll
      for (int c = 0; c < CN; c++) kv[c] = *(const float4 *)(Ks + (tx + 8 * c) * C::KP + 4 * d4);
#pragma unroll
      for (int e = 0; e < 4; e++) {
        float qv[RM];
        pcu_lds<RM>(Qt + (4 * d4 + e) * BM + ty * RM, qv);
#pragma unroll
        for (int r = 0; r < RM; r++)
#pragma unroll
          for (int c = 0; c < CN; c++) s[r][c] = fmaf(qv[r], f4at(kv[c], e), s[r][c]);
      }
    }
    __syncthreads(); /* every thread is done with Ks */
    if (k0n < kend) load_rows<D>(Ks, C::KP, BN, a.k, kbase + k0n * a.k.sn, nk - k0n, dk, veck, async);
    pcu_cp_commit(); /* possibly empty: keeps the group count uniform */

#pragma unroll
    for (int r = 0; r < RM; r++) {
      online_softmax_row<CN, ON>(a, q0 + ty * RM + r, nq, nk, lh, mrow[r], [&](int c) { return k0 + tx + 8 * c; },
                                 s[r], m[r], l[r], acc[r]);
    }
#pragma unroll
    for (int c = 0; c < CN; c++) {
      float *p = Pt + (tx + 8 * c) * C::PP + ty * RM;
#pragma unroll
      for (int r = 0; r < RM; r++) p[r] = s[r][c];
    }
    pcu_cp_wait<1>(); /* V of this tile landed (the next K may still be in flight) */
    __syncthreads(); /* P and V visible */

#pragma unroll 4
    for (int j = 0; j < BN; j++) {
      float pv[RM], vv[ON];
      pcu_lds<RM>(Pt + j * C::PP + ty * RM, pv);
#pragma unroll
      for (int c4 = 0; c4 < ON / 4; c4++) pcu_lds<4>(Vs + j * D + c4 * 32 + tx * 4, vv + c4 * 4);
#pragma unroll
      for (int r = 0; r < RM; r++)
#pragma unroll
        for (int c = 0; c < ON; c++) acc[r][c] = fmaf(pv[r], vv[c], acc[r][c]);
    }
    __syncthreads(); /* every thread is done with Vs and Pt */
    if (k0n < kend) load_rows<D>(Vs, D, BN, a.v, vbase + k0n * a.v.sn, nk - k0n, dv, vecv, async);
    pcu_cp_commit();
    it++;
    k0 = k0n;
  }
#undef TILE_K0

  store_rows<RM, ON>(a, q0 + ty * RM, tx, nq, dv, ib, is, ih, m, l, acc);
}

/* The variants, best first for each padded head dim; a device takes the first that fits
 * its shared memory (Pascal: 48 KB per block, so K and V share a buffer there). Listed once,
 * for the host table and for NVRTC's instantiations (common.cuh, "Under NVRTC"):
 * VARIANT(D, RM, BN, SHARE) is k_flash, VARIANT2(D, RM, BN) is k_flash2.
 * Per head dim: pipelined variants first; the original ones remain for devices whose shared
 * memory the pipelined ones exceed (Pascal's 48 KB); the 16-row variant last, for grids too
 * small to fill the device otherwise. */
#define FLASH_VARIANTS(VARIANT, VARIANT2) \
  VARIANT2(32, 4, 64)  VARIANT2(32, 2, 64) \
  VARIANT2(64, 4, 64)  VARIANT2(64, 2, 64)  VARIANT(64, 4, 64, false)  VARIANT(64, 2, 64, false)  VARIANT(64, 4, 32, true) \
  VARIANT2(128, 4, 32) VARIANT2(128, 2, 32) VARIANT(128, 4, 32, false) VARIANT(128, 2, 32, false) \
  VARIANT(128, 2, 32, true) VARIANT2(128, 1, 32) \
  VARIANT2(256, 2, 32) VARIANT(256, 2, 32, false)

#ifdef __CUDACC_RTC__
#define RTC_FLASH(D, RM, BN, SH) template __global__ void k_flash<D, RM, BN, SH>(pcu_flash_args, int64_t, int, int, int);
#define RTC_FLASH2(D, RM, BN) template __global__ void k_flash2<D, RM, BN>(pcu_flash_args, int64_t, int, int, int);
FLASH_VARIANTS(RTC_FLASH, RTC_FLASH2)
#else /* host side */
typedef struct flash_variant {
  int d, bm, bn;
  size_t smem;
  void (*kernel)(pcu_flash_args, int64_t, int, int, int);
} flash_variant;

#define ROW(D, RM, BN, SH) {D, 16 * RM, BN, FlashCfg<D, RM, BN, SH>::SMEM, k_flash<D, RM, BN, SH>},
#define ROW2(D, RM, BN) {D, 16 * RM, BN, Flash2Cfg<D, RM, BN>::SMEM, k_flash2<D, RM, BN>},
static const flash_variant variants[] = {FLASH_VARIANTS(ROW, ROW2)};

/* The smallest padded head dim holding dk and dv; among its variants that fit the shared
 * memory, the first (sms <= 0), else the first whose grid has at least two blocks per
 * multiprocessor, else (short sequences) the one with the fewest query rows per block. */
static const flash_variant *pick(int64_t dk, int64_t dv, size_t smem_optin, int64_t nq, int64_t units, int sms) {
  const int d = pcu_head_dim_pad(dk > dv ? dk : dv);
  const flash_variant *best = NULL;
  for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
    const flash_variant *v = &variants[i];
    if (v->d != d || v->smem > smem_optin) continue;
    if (sms <= 0 || ((nq + v->bm - 1) / v->bm) * units >= 2 * (int64_t)sms) return v;
    if (!best || v->bm < best->bm) best = v;
  }
  return best;
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
  const cudaError_t e = pcu_prepare_smem((const void *)v->kernel, v->smem);
  if (e != cudaSuccess) return (int)e;
  v->kernel<<<(unsigned)blocks, FLASH_THREADS, v->smem, s>>>(*a, nqt, view_vec4(a->q), view_vec4(a->k), view_vec4(a->v));
  return (int)cudaGetLastError();
}
#endif /* !__CUDACC_RTC__ */

/* Fused tiled attention for f32 inputs on tensor cores (sm_80 and newer): the algorithm of
 * flash.cu with Q K^T and P V as mma.sync m16n8k8 tf32 (f32 accumulation). Two precisions:
 *  - exact (the default): 3xTF32 split products. Each operand x = hi + lo with
 *    hi = tf32(x) (cvt.rna) and lo = tf32(x - hi) (x - hi is exact in f32), and
 *    a*b ~ a_hi*b_hi + a_hi*b_lo + a_lo*b_hi: about 22 significant bits per product, the
 *    error of f32 FMA arithmetic within a small factor (SPEC.md section 7, f32 exact row).
 *  - PATTN_PRECISION_TF32: one tf32 product per mma (SPEC's TF32 row).
 * Tensor cores add into an f32 accumulator with truncation (round toward zero), a bias of
 * up to an ulp per mma: the exact mode keeps every such chain short (P V: each kv tile
 * accumulated in fresh registers and folded into o with an f32 FMA; Q K^T: hi*hi restarted
 * every 64 dims, the cross terms apart), so its error does not grow with the sequence.
 * Softmax, masking, the running max and sum and the output are f32. Scores are kept in
 * log2 units (Q is scaled by scale*log2(e), the mask by log2(e)) so the exponentials are
 * exp2f (2 ulp, like expf); lse is converted back to natural log.
 *
 * Layout: NW warps; warp w owns MT m-tiles (16 query rows each) of the block's BM rows and
 * keeps their scores and output in registers. Lane (g, t) = (lane / 4, lane % 4).
 *  - Q K^T: the k index (head dim) of each 8-wide k-step is permuted, slot t <-> dim 2t and
 *    slot t+4 <-> dim 2t+1, for both operands: the A pair (a0, a2) of row g is one float2
 *    at Q[g][kk*8 + 2t], (a1, a3) the same of row g+8, and the B pair (b0, b1) of key n*8+g
 *    one float2 at K[n*8+g][kk*8 + 2t].
 *  - P V: the k index (key) is permuted the same way, slot t <-> key 2t, t+4 <-> key 2t+1,
 *    so the score accumulator c0..c3 = (g,2t) (g,2t+1) (g+8,2t) (g+8,2t+1) IS the A
 *    fragment (a0,a1,a2,a3) = (c0,c2,c1,c3): P never leaves registers. The n index of
 *    output tile j is permuted too: n-slot n of tile j is output column
 *    32*(j/4) + 4*n + j%4, so the B values a lane needs for tiles 4c..4c+3 (column slot g,
 *    keys 2t and 2t+1) are two float4 at V[2t][32c + 4g] and V[2t+1][32c + 4g], and the
 *    accumulator of a lane covers 8 consecutive columns 32c + 8t .. +7 per row.
 * Shared memory: Q [BM][D+8] (scaled and converted once, see Tf32Cfg::QMODE), K [BN][D+8]
 * and V [BN][D+4], one buffer each, filled by 16-byte cp.async (synchronous loads where a
 * view is not 16-byte aligned): the next K tile loads during the softmax and P V, the next
 * V tile during the next Q K^T. Pitches: D+8 makes the float2 fragment loads (half-warp: banks 8g + 2t)
 * conflict-free, D+4 the float4 V loads (quarter-warp: banks 8t + 4g).
 * Per-score checks (key bounds, causal) only on tiles that need them; the additive mask is
 * added wherever present. D (padded head dim) is 32, 64, 128 or 256; dk, dv <= D, the rest
 * zero-filled. Dense attention only (block-sparse layouts use flash.cu).
 *
 * Host code (variant table, launcher) is one #ifndef __CUDACC_RTC__ block at the end of the
 * file; the variants are listed once, in TF32_VARIANTS (common.cuh, "Under NVRTC"). */
#include "mma.cuh"

template <int D, int BN, int MT, int NW, bool EX> struct Tf32Cfg {
  static constexpr int THREADS = NW * 32;
  static constexpr int BM = NW * 16 * MT;
  static constexpr int QP = D + 8; /* Q and K pitch (floats) */
  static constexpr int KP = D + 8;
  static constexpr int VP = D + 4; /* V pitch */
  /* Q is stored converted once: tf32 (TF32 mode), hi and lo tiles (exact, d <= 128), or as
   * f32, split by every warp on every kv tile (exact d = 256: no room for a second tile) */
  static constexpr int QMODE = EX ? (D <= 128 ? 2 : 0) : 1;
  static constexpr int QTILES = QMODE == 2 ? 2 : 1;
  static constexpr size_t SMEM = ((size_t)QTILES * BM * QP + (size_t)BN * KP + (size_t)BN * VP) * sizeof(float);
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800

#define TF_LOG2E 1.4426950408889634
#define TF_LN2 0.69314718055994531f

__device__ __forceinline__ uint32_t tf_rna(float x) { return pcu_mma_ops::tf32_rna(x); }
/* x = hi + lo, both tf32; the result of cvt is an f32 bit pattern with the low 13 mantissa
 * bits clear, so x - hi is exact. */
__device__ __forceinline__ void tf_split(float x, uint32_t &hi, uint32_t &lo) {
  hi = tf_rna(x);
  lo = tf_rna(x - __uint_as_float(hi));
}

/* c += a * b, m16n8k8, A row-major 16x8, B column-major 8x8, tf32 in, f32 accumulate. */
__device__ __forceinline__ void tf_mma(float *c, const uint32_t *a, uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Rows [0, rows) of a [rows][D] K or V tile into dst (row r at dst + r*pitch), columns <
 * dcols and rows < nrows from the view (row r at element base + r*sn), zeros elsewhere
 * (rows beyond the keys must be 0, not garbage: 0 * NaN is NaN). async: cp.async, which
 * needs 16-byte aligned rows; else plain loads (vec: float4 loads). */
template <int D, int THREADS>
__device__ __forceinline__ void tf_load_rows(float *dst, int pitch, int rows, const pcu_view &v, int64_t base,
                                             int64_t nrows, int64_t dcols, bool vec, bool async) {
  constexpr int TPR = D / 4; /* threads per row, 4 columns each */
  constexpr int RPP = THREADS / TPR;
  static_assert(THREADS % TPR == 0, "row split");
  const int c = (threadIdx.x % TPR) * 4;
  const int nc = (int)min((int64_t)4, max((int64_t)0, dcols - c));
  const float *src = (const float *)v.buf;
  for (int r = threadIdx.x / TPR; r < rows; r += RPP) {
    const int n = r < nrows ? nc : 0;
    float *d = dst + r * pitch + c;
    const int64_t at = base + (int64_t)r * v.sn + c;
    if (async) {
      pcu_cp_async16(d, src + (n > 0 ? at : 0), n * 4);
    } else {
      float4 x = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (vec && n == 4) {
        x = *(const float4 *)(src + at);
      } else {
        if (n > 0) x.x = src[at];
        if (n > 1) x.y = src[at + 1];
        if (n > 2) x.z = src[at + 2];
        if (n > 3) x.w = src[at + 3];
      }
      *(float4 *)d = x;
    }
  }
}

/* The Q tile (rows < nrows, columns < dcols, zeros elsewhere), times mul, converted by
 * QMODE: 0 stored as f32; 1 as tf32 (cvt.rna); 2 as tf32 hi parts at dst and lo parts at
 * lo (same pitch). Plain loads: Q is read once per block. */
template <int D, int THREADS, int QMODE>
__device__ __forceinline__ void tf_load_q(float *dst, int pitch, int rows, const pcu_view &v, int64_t base,
                                          int64_t nrows, int64_t dcols, float mul, float *lo, bool vec) {
  constexpr int TPR = D / 4;
  constexpr int RPP = THREADS / TPR;
  const int c = (threadIdx.x % TPR) * 4;
  const int nc = (int)min((int64_t)4, max((int64_t)0, dcols - c));
  const float *src = (const float *)v.buf;
  for (int r = threadIdx.x / TPR; r < rows; r += RPP) {
    const int n = r < nrows ? nc : 0;
    const int64_t at = base + (int64_t)r * v.sn + c;
    float x[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (vec && n == 4) {
      const float4 q = *(const float4 *)(src + at);
      x[0] = q.x; x[1] = q.y; x[2] = q.z; x[3] = q.w;
    } else {
#pragma unroll
      for (int e = 0; e < 4; e++)
        if (e < n) x[e] = src[at + e];
    }
    float h[4], l[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
      const float y = x[e] * mul;
      uint32_t hb = __float_as_uint(y), lb = 0;
      if (QMODE == 1) hb = tf_rna(y);
      if (QMODE == 2) tf_split(y, hb, lb);
      h[e] = __uint_as_float(hb);
      l[e] = __uint_as_float(lb);
    }
    *(float4 *)(dst + r * pitch + c) = make_float4(h[0], h[1], h[2], h[3]);
    if (QMODE == 2) *(float4 *)(lo + r * pitch + c) = make_float4(l[0], l[1], l[2], l[3]);
  }
}

__device__ __forceinline__ float tf_f4(const float4 &v, int e) { return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w; }

#endif /* __CUDA_ARCH__ >= 800 */

/* One block: BM query rows of one (batch, segment, head) against the keys of one split.
 * EXACT: 3xTF32, else 1xTF32. vecq/veck/vecv: the view's rows are 16-byte aligned (float4
 * loads, cp.async); veco: the output is f32 with 16-byte aligned rows.
 * nsplit > 1 (small grids): block b takes split b % nsplit, keys [split*kchunk, +kchunk)
 * (kchunk a multiple of BN), and writes its normalised partial output and lse to copy
 * `split` of a.out and a.lse, which are then dense f32 workspaces of nsplit copies one after
 * the other (copy s at offset s * nb * sb); pcu_split_combine merges them. */
template <int D, int BN, int MT, int NW, bool EXACT>
__global__ void __launch_bounds__(NW * 32) k_flash_tf32(pcu_flash_args a, int64_t nqt, int vecq, int veck, int vecv,
                                                         int veco, int nsplit, int64_t kchunk) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  typedef Tf32Cfg<D, BN, MT, NW, EXACT> C;
  constexpr int THREADS = C::THREADS, BM = C::BM, QP = C::QP, KP = C::KP, VP = C::VP;
  constexpr int NT = BN / 8; /* score n-tiles = P V k-steps */
  constexpr int OT = D / 8;  /* output n-tiles */
  constexpr int KS = D / 8;  /* Q K^T k-steps */
  static_assert(D % 32 == 0 && BN % 8 == 0, "tile shape");
  extern __shared__ float4 tf_smem[];
  float *Qs = (float *)tf_smem;     /* QMODE 2: the hi parts; Qs + BM * QP the lo parts */
  float *Ks = Qs + C::QTILES * BM * QP;
  float *Vs = Ks + BN * KP;

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int64_t nq = a.q.n, nk = a.k.n, dk = a.q.d, dv = a.v.d;
  int64_t bid = blockIdx.x, kb = 0;
  if (nsplit > 1) {
    const int64_t split = bid % nsplit;
    bid /= nsplit;
    kb = split * kchunk;
    a.out.offset += split * a.out.nb * a.out.sb;
    a.lse.offset += split * a.lse.nb * a.lse.sb;
  }
  const pcu_flash_tile tile = pcu_flash_tile_of(a, nqt, bid);
  const int64_t qt = tile.qt, ih = tile.ih, is = tile.is, ib = tile.ib, kh = tile.kh;
  const int64_t q0 = qt * BM;
  const int wr = warp * 16 * MT;  /* the warp's first row in the tile */
  const int64_t wq0 = q0 + wr;
  const bool async = veck && vecv;

  tf_load_q<D, THREADS, C::QMODE>(Qs, QP, BM, a.q, pcu_row(a.q, ib, is, ih, q0), nq - q0, dk,
                                  (float)((double)a.scale * TF_LOG2E), Qs + BM * QP, vecq);
  const int64_t kbase = pcu_row(a.k, ib, is, kh, 0), vbase = pcu_row(a.v, ib, is, kh, 0);

  /* keys at or beyond kend are invisible to every row of the tile (or outside the split) */
  int64_t kend = nk;
  if (nsplit > 1) kend = min(nk, kb + kchunk);
  if (a.causal) kend = min(kend, max((int64_t)0, q0 + BM + a.causal_offset));
  const int64_t ntiles = kend > kb ? (kend - kb + BN - 1) / BN : 0;

  /* mask row of each of the thread's rows (mt, h): row wq0 + mt*16 + g + 8h, clamped to a
   * real row (rows past nq are computed but never stored) */
  int64_t mrow[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      int64_t i = wq0 + mt * 16 + g + 8 * h;
      if (i > nq - 1) i = nq - 1;
      mrow[mt][h] = a.mask.buf ? pcu_row(a.mask, a.mask.nb > 1 ? ib : 0, 0, a.mask.nh > 1 ? ih : 0, i) : 0;
    }
  const float mask_mul = (float)TF_LOG2E;

  float m[MT][2], l[MT][2], o[MT][OT][4];
#pragma unroll
  for (int mt = 0; mt < MT; mt++) {
    m[mt][0] = m[mt][1] = -PCU_INF;
    l[mt][0] = l[mt][1] = 0.0f;
#pragma unroll
    for (int j = 0; j < OT; j++) o[mt][j][0] = o[mt][j][1] = o[mt][j][2] = o[mt][j][3] = 0.0f;
  }

  if (ntiles > 0) {
    tf_load_rows<D, THREADS>(Ks, KP, BN, a.k, kbase + kb * a.k.sn, nk - kb, dk, veck, async);
    pcu_cp_commit();
    tf_load_rows<D, THREADS>(Vs, VP, BN, a.v, vbase + kb * a.v.sn, nk - kb, dv, vecv, async);
    pcu_cp_commit();
  }
  /* Committed groups in flight at the top of each iteration: this tile's K, then its V. */
  for (int64_t it = 0; it < ntiles; it++) {
    const int64_t k0 = kb + it * BN, k0n = k0 + BN;
    const bool more = it + 1 < ntiles;
    pcu_cp_wait<1>();   /* this thread's K copies landed */
    __syncthreads(); /* everyone's K (and, the first time, Q) stores are visible */

    /* ---- S = Q K^T (log2 units) ----
     * The hi*hi products go to sg, restarted every KG k-steps (64 dims) and folded into s with
     * f32 adds (the truncating tensor-core accumulation stays short, see P V below); the
     * cross terms hi*lo + lo*hi, 2^-11 smaller, to sx over the whole head dim. */
    constexpr int KG = 8;
    constexpr bool GROUPED = EXACT && KS > KG;
    float s[MT][NT][4];
    float sg[GROUPED ? MT : 1][GROUPED ? NT : 1][4];
    float sx[EXACT ? MT : 1][EXACT ? NT : 1][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          s[mt][n][e] = 0.0f;
          if (GROUPED) sg[GROUPED ? mt : 0][GROUPED ? n : 0][e] = 0.0f;
          if (EXACT) sx[EXACT ? mt : 0][EXACT ? n : 0][e] = 0.0f;
        }
#pragma unroll 4 /* not fully: ptxas then hoists the loads of later k-steps until registers spill */
    for (int kk = 0; kk < KS; kk++) {
      uint32_t ah[MT][4], al[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++) {
        const float2 x0 = *(const float2 *)(Qs + (wr + mt * 16 + g) * QP + kk * 8 + 2 * t);
        const float2 x1 = *(const float2 *)(Qs + (wr + mt * 16 + g + 8) * QP + kk * 8 + 2 * t);
        if (C::QMODE == 2) {
          const float2 y0 = *(const float2 *)(Qs + (BM + wr + mt * 16 + g) * QP + kk * 8 + 2 * t);
          const float2 y1 = *(const float2 *)(Qs + (BM + wr + mt * 16 + g + 8) * QP + kk * 8 + 2 * t);
          ah[mt][0] = __float_as_uint(x0.x); ah[mt][1] = __float_as_uint(x1.x);
          ah[mt][2] = __float_as_uint(x0.y); ah[mt][3] = __float_as_uint(x1.y);
          al[mt][0] = __float_as_uint(y0.x); al[mt][1] = __float_as_uint(y1.x);
          al[mt][2] = __float_as_uint(y0.y); al[mt][3] = __float_as_uint(y1.y);
        } else if (C::QMODE == 1) {
          ah[mt][0] = __float_as_uint(x0.x); ah[mt][1] = __float_as_uint(x1.x);
          ah[mt][2] = __float_as_uint(x0.y); ah[mt][3] = __float_as_uint(x1.y);
        } else if (EXACT) {
          tf_split(x0.x, ah[mt][0], al[mt][0]);
          tf_split(x1.x, ah[mt][1], al[mt][1]);
          tf_split(x0.y, ah[mt][2], al[mt][2]);
          tf_split(x1.y, ah[mt][3], al[mt][3]);
        } else {
          ah[mt][0] = tf_rna(x0.x); ah[mt][1] = tf_rna(x1.x); ah[mt][2] = tf_rna(x0.y); ah[mt][3] = tf_rna(x1.y);
        }
      }
#pragma unroll
      for (int n = 0; n < NT; n++) {
        const float2 kb = *(const float2 *)(Ks + (n * 8 + g) * KP + kk * 8 + 2 * t);
        uint32_t bh0, bh1, bl0 = 0, bl1 = 0;
        if (EXACT) {
          tf_split(kb.x, bh0, bl0);
          tf_split(kb.y, bh1, bl1);
        } else {
          bh0 = tf_rna(kb.x); bh1 = tf_rna(kb.y);
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          if (EXACT) {
            tf_mma(sx[EXACT ? mt : 0][EXACT ? n : 0], ah[mt], bl0, bl1);
            tf_mma(sx[EXACT ? mt : 0][EXACT ? n : 0], al[mt], bh0, bh1);
          }
          tf_mma(GROUPED ? sg[GROUPED ? mt : 0][GROUPED ? n : 0] : s[mt][n], ah[mt], bh0, bh1);
        }
      }
      if (GROUPED && kk % KG == KG - 1) {
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
              s[mt][n][e] += sg[GROUPED ? mt : 0][GROUPED ? n : 0][e];
              sg[GROUPED ? mt : 0][GROUPED ? n : 0][e] = 0.0f;
            }
      }
    }
    __syncthreads(); /* every warp is done with Ks */
    if (more) tf_load_rows<D, THREADS>(Ks, KP, BN, a.k, kbase + k0n * a.k.sn, nk - k0n, dk, veck, async);
    pcu_cp_commit(); /* possibly empty: keeps the group count uniform */

    /* ---- online softmax; s becomes P ---- */
    if (EXACT) {
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
          for (int e = 0; e < 4; e++) s[mt][n][e] += sx[EXACT ? mt : 0][EXACT ? n : 0][e];
    }
    /* per-score visibility only where some key of the tile is out of range or causally
     * hidden from some row of this warp (warp-uniform) */
    const bool check = k0 + BN > nk || (a.causal && k0 + BN - 1 > wq0 + a.causal_offset);
    if (check) {
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const int64_t i = wq0 + mt * 16 + g + 8 * (e >> 1), j = k0 + n * 8 + 2 * t + (e & 1);
            const bool vis = j < nk && (!a.causal || j <= i + a.causal_offset);
            float x = s[mt][n][e];
            if (!vis) x = -PCU_INF;
            else if (a.mask.buf) x += mask_mul * pcu_load(a.mask.buf, a.mask.dtype, mrow[mt][e >> 1] + j);
            s[mt][n][e] = x;
          }
    } else if (a.mask.buf) {
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
          for (int e = 0; e < 4; e++)
            s[mt][n][e] +=
                mask_mul * pcu_load(a.mask.buf, a.mask.dtype, mrow[mt][e >> 1] + k0 + n * 8 + 2 * t + (e & 1));
    }
    float rs[MT][2]; /* exact mode: each row's rescale factor for o */
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        float mx = -PCU_INF;
#pragma unroll
        for (int n = 0; n < NT; n++) mx = fmaxf(mx, fmaxf(s[mt][n][2 * h], s[mt][n][2 * h + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mnew = fmaxf(m[mt][h], mx);
        /* a row with nothing visible yet keeps base 0: exp2(-inf - 0) = 0, never NaN */
        const float base = mnew == -PCU_INF ? 0.0f : mnew;
        const float alpha = exp2f(m[mt][h] - base);
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < NT; n++) {
          s[mt][n][2 * h] = exp2f(s[mt][n][2 * h] - base);
          s[mt][n][2 * h + 1] = exp2f(s[mt][n][2 * h + 1] - base);
          sum += s[mt][n][2 * h] + s[mt][n][2 * h + 1];
        }
        /* l is this lane's partial sum (its columns only); the 4 lanes of the row share m
         * and alpha, and the partials are added up once at the end */
        l[mt][h] = l[mt][h] * alpha + sum;
        m[mt][h] = mnew;
        if (EXACT) {
          rs[mt][h] = alpha; /* applied where the tile's P V is folded in */
        } else {
#pragma unroll
          for (int j = 0; j < OT; j++) {
            o[mt][j][2 * h] *= alpha;
            o[mt][j][2 * h + 1] *= alpha;
          }
        }
      }

    pcu_cp_wait<1>();   /* this thread's V copies landed (the next K may be in flight) */
    __syncthreads(); /* everyone's V is visible */

    /* ---- O += P V ----
     * Tensor cores add into the accumulator with truncation (round toward zero), so a chain
     * of mmas into o over a whole sequence drifts toward zero by up to an ulp per mma (about
     * 1e-4 relative at 16k keys): harmless at TF32 accuracy, where o accumulates directly,
     * but not for the exact mode. There each tile's product is accumulated in fresh
     * registers over BN/8 k-steps only (th: hi*hi; tl: the cross terms, or th as well where
     * registers are short) and folded into o with f32 adds. */
    if constexpr (EXACT) {
      /* d = 256 (o alone takes 128 registers): one accumulator per chunk */
      constexpr bool TL = D <= 128;
      uint32_t ph[MT][NT][4], pl[MT][NT][4];
#pragma unroll
      for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int kk = 0; kk < NT; kk++) {
          /* A fragment from the score accumulator: (a0, a1, a2, a3) = (c0, c2, c1, c3) */
          tf_split(s[mt][kk][0], ph[mt][kk][0], pl[mt][kk][0]);
          tf_split(s[mt][kk][2], ph[mt][kk][1], pl[mt][kk][1]);
          tf_split(s[mt][kk][1], ph[mt][kk][2], pl[mt][kk][2]);
          tf_split(s[mt][kk][3], ph[mt][kk][3], pl[mt][kk][3]);
        }
#pragma unroll
      for (int c = 0; c < D / 32; c++) {
        float th[MT][4][4], tl[TL ? MT : 1][4][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int e = 0; e < 4; e++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
              th[mt][e][r] = 0.0f;
              if (TL) tl[TL ? mt : 0][e][r] = 0.0f;
            }
#pragma unroll
        for (int kk = 0; kk < NT; kk++) {
          const float4 v0 = *(const float4 *)(Vs + (kk * 8 + 2 * t) * VP + 32 * c + 4 * g);
          const float4 v1 = *(const float4 *)(Vs + (kk * 8 + 2 * t + 1) * VP + 32 * c + 4 * g);
#pragma unroll
          for (int e = 0; e < 4; e++) { /* output tile j = 4c + e */
            uint32_t bh0, bh1, bl0, bl1;
            tf_split(tf_f4(v0, e), bh0, bl0);
            tf_split(tf_f4(v1, e), bh1, bl1);
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
              float *x = TL ? tl[TL ? mt : 0][e] : th[mt][e];
              tf_mma(x, ph[mt][kk], bl0, bl1);
              tf_mma(x, pl[mt][kk], bh0, bh1);
              tf_mma(th[mt][e], ph[mt][kk], bh0, bh1);
            }
          }
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
          for (int e = 0; e < 4; e++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
              const float tile = TL ? th[mt][e][r] + tl[TL ? mt : 0][e][r] : th[mt][e][r];
              o[mt][4 * c + e][r] = fmaf(o[mt][4 * c + e][r], rs[mt][r >> 1], tile);
            }
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < NT; kk++) {
        uint32_t ph[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
          ph[mt][0] = tf_rna(s[mt][kk][0]); ph[mt][1] = tf_rna(s[mt][kk][2]);
          ph[mt][2] = tf_rna(s[mt][kk][1]); ph[mt][3] = tf_rna(s[mt][kk][3]);
        }
#pragma unroll
        for (int c = 0; c < D / 32; c++) {
          const float4 v0 = *(const float4 *)(Vs + (kk * 8 + 2 * t) * VP + 32 * c + 4 * g);
          const float4 v1 = *(const float4 *)(Vs + (kk * 8 + 2 * t + 1) * VP + 32 * c + 4 * g);
#pragma unroll
          for (int e = 0; e < 4; e++) {
            const uint32_t bh0 = tf_rna(tf_f4(v0, e)), bh1 = tf_rna(tf_f4(v1, e));
#pragma unroll
            for (int mt = 0; mt < MT; mt++) tf_mma(o[mt][4 * c + e], ph[mt], bh0, bh1);
          }
        }
      }
    }
    __syncthreads(); /* every warp is done with Vs */
    if (more) tf_load_rows<D, THREADS>(Vs, VP, BN, a.v, vbase + k0n * a.v.sn, nk - k0n, dv, vecv, async);
    pcu_cp_commit();
  }

  /* ---- epilogue: out = out_scale * o / l, lse = ln(sum exp(scores)) ---- */
#pragma unroll
  for (int mt = 0; mt < MT; mt++)
#pragma unroll
    for (int h = 0; h < 2; h++) {
      float lt = l[mt][h];
      lt += __shfl_xor_sync(0xffffffffu, lt, 1);
      lt += __shfl_xor_sync(0xffffffffu, lt, 2);
      const int64_t i = wq0 + mt * 16 + g + 8 * h;
      if (i >= nq) continue;
      const float inv = lt > 0.0f ? a.out_scale / lt : 0.0f;
      const int64_t orow = pcu_row(a.out, ib, is, ih, i);
#pragma unroll
      for (int c = 0; c < D / 32; c++) {
        const int col = 32 * c + 8 * t; /* columns col .. col+3 from o[4c+e][2h], col+4 .. from o[4c+e][2h+1] */
        float y[8];
#pragma unroll
        for (int e = 0; e < 4; e++) {
          y[e] = o[mt][4 * c + e][2 * h] * inv;
          y[4 + e] = o[mt][4 * c + e][2 * h + 1] * inv;
        }
        if (veco && col + 8 <= dv) {
          float *p = (float *)a.out.buf + orow + col;
          *(float4 *)p = make_float4(y[0], y[1], y[2], y[3]);
          *(float4 *)(p + 4) = make_float4(y[4], y[5], y[6], y[7]);
        } else {
#pragma unroll
          for (int e = 0; e < 8; e++)
            if (col + e < dv) pcu_store(a.out.buf, a.out.dtype, orow + col + e, y[e]);
        }
      }
      if (a.lse.buf && t == 0)
        pcu_store(a.lse.buf, a.lse.dtype, pcu_row(a.lse, ib, is, ih, i),
                  lt > 0.0f ? m[mt][h] * TF_LN2 + logf(lt) : -PCU_INF);
    }
#endif
}

/* The variants (D, BN, MT, NW, EXACT), best first per head dim and precision; a device
 * takes the first whose shared memory fits its per-block limit, and for grids of fewer
 * than two blocks per multiprocessor the one with the fewest query rows per block. Shared
 * memory (KiB) / sm_90 registers: exact d=32 39/141, 64 71/242, 128 101.5/180 (BN 32) and
 * 85/176 (BN 16, for sm_86/89's 99 KiB), 256 197.5/255 (8 warps) and 98.75/255 (4 warps,
 * BN 16, for sm_80 and sm_86/89); both d=256 exact kernels spill a few loop-invariant
 * 64-bit offsets, reloaded a few times per kv tile, none inside the mma loops. TF32 d=32
 * 39/211 and 29/127, 64 71/230 and 53/124, 128 101.5/249 and 67.5/128, 256 197.5/218 and
 * 98.75/204. Listed once so an NVRTC build instantiates the same kernels. */
#define TF32_VARIANTS(X)                                                                                         \
  X(32, 64, 1, 4, true) X(64, 64, 1, 4, true) X(128, 32, 1, 4, true) X(128, 16, 1, 4, true)                      \
  X(256, 32, 1, 8, true) X(256, 16, 1, 4, true)                                                                  \
  X(32, 64, 2, 4, false) X(32, 64, 1, 4, false) X(64, 64, 2, 4, false) X(64, 64, 1, 4, false)                    \
  X(128, 32, 2, 4, false) X(128, 32, 1, 4, false) X(256, 32, 1, 8, false) X(256, 16, 1, 4, false)

#ifdef __CUDACC_RTC__
/* NVRTC compiles device code only: instantiate the kernels the host table below launches
 * (common.cuh, "Under NVRTC"). */
#define TF32_INSTANTIATE(D, BN, MT, NW, EX) \
  template __global__ void k_flash_tf32<D, BN, MT, NW, EX>(pcu_flash_args, int64_t, int, int, int, int, int, int64_t);
TF32_VARIANTS(TF32_INSTANTIATE)
#undef TF32_INSTANTIATE
#else /* host side */

typedef struct tf32_variant {
  int d, exact, bm, bn, threads;
  size_t smem;
  void (*kernel)(pcu_flash_args, int64_t, int, int, int, int, int, int64_t);
} tf32_variant;

#define TF32_ENTRY(D, BN, MT, NW, EX)                                                                 \
  {D, EX ? 1 : 0, Tf32Cfg<D, BN, MT, NW, EX>::BM, BN, Tf32Cfg<D, BN, MT, NW, EX>::THREADS,              \
   Tf32Cfg<D, BN, MT, NW, EX>::SMEM, k_flash_tf32<D, BN, MT, NW, EX>},
static const tf32_variant tf32_variants[] = {TF32_VARIANTS(TF32_ENTRY)};
#undef TF32_ENTRY

/* Splitting the keys costs a combine pass, which the wave count below charges as this
 * fraction of one wave of the attention kernel. */
#define TF32_SPLIT_COST 0.15
#define TF32_MAX_SPLIT 8

/* The launch for a (see cuda_kernels.h); cudaErrorNotSupported when this path does not apply
 * (cc < 80, not all of q, k, v f32, block-sparse, head dims beyond 256, or no variant fits the
 * shared memory). The variant: the first whose shared memory fits, or for grids of fewer than two blocks per
 * multiprocessor the one with the fewest query rows per block. A grid that still leaves
 * block slots idle (fewer blocks than fit at once on the device) splits the keys into nsplit
 * ranges of at least two kv tiles, each its own block: nsplit minimises the number of waves
 * per split plus TF32_SPLIT_COST for the combine (b=1, h=12, d=128, n=512: 96 blocks of 64
 * rows, two fit per multiprocessor, so two splits fill 192 of the H200's 264 slots). */
extern "C" int pcu_flash_tf32_plan(const pcu_flash_args *a, int cc, size_t smem_optin, int tf32_only, pcu_tf32_plan *p) {
  if (cc < 80 || a->layout || a->q.dtype != PCU_F32 || a->k.dtype != PCU_F32 || a->v.dtype != PCU_F32 ||
      a->k.d != a->q.d || a->k.nh <= 0 || a->q.nh % a->k.nh != 0)
    return (int)cudaErrorNotSupported;
  const int64_t dmax = a->q.d > a->v.d ? a->q.d : a->v.d;
  if (dmax > 256) return (int)cudaErrorNotSupported;
  const int d = pcu_head_dim_pad(dmax);
  const int exact = tf32_only ? 0 : 1;
  const int64_t units = a->q.nb * a->q.ns * a->q.nh;
  const tf32_variant *v = NULL, *small = NULL;
  for (size_t i = 0; i < sizeof tf32_variants / sizeof tf32_variants[0]; i++) {
    const tf32_variant *c = &tf32_variants[i];
    if (c->d != d || c->exact != exact || c->smem > smem_optin) continue;
    if (a->num_sms <= 0 || ((a->q.n + c->bm - 1) / c->bm) * units >= 2 * (int64_t)a->num_sms) { v = c; break; }
    if (!small || c->bm < small->bm) small = c;
  }
  if (!v) v = small;
  if (!v) return (int)cudaErrorNotSupported;
  p->variant = (int)(v - tf32_variants);
  p->nqt = (a->q.n + v->bm - 1) / v->bm;
  p->blocks = p->nqt * units;
  p->nsplit = 1;
  p->kchunk = a->k.n;
  p->ws_bytes = 0;
  if (p->blocks <= 0) return 0;
  const cudaError_t e = pcu_prepare_smem((const void *)v->kernel, v->smem);
  if (e != cudaSuccess) return (int)e;
  if (a->num_sms > 0) {
    int per_sm = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, v->kernel, v->threads, v->smem) != cudaSuccess) {
      (void)cudaGetLastError();
      per_sm = 1;
    }
    const int64_t slots = (int64_t)(per_sm > 0 ? per_sm : 1) * a->num_sms;
    const int64_t ktiles = (a->k.n + v->bn - 1) / v->bn;
    double best = 1e300;
    for (int sp = 1; sp <= TF32_MAX_SPLIT && (sp == 1 || (p->blocks < slots && 2 * sp <= ktiles)); sp++) {
      const int64_t chunk = (ktiles + sp - 1) / sp * v->bn, nsp = (a->k.n + chunk - 1) / chunk;
      if (nsp != sp) continue; /* the same chunks as a smaller split */
      const double cost = (double)((p->blocks * sp + slots - 1) / slots) / sp + (sp > 1 ? TF32_SPLIT_COST : 0.0);
      if (cost < best) { best = cost; p->nsplit = sp; p->kchunk = chunk; }
    }
    if (p->nsplit > 1) {
      const int64_t rows = units * a->q.n;
      p->ws_bytes = (size_t)p->nsplit * (size_t)rows * (size_t)(a->v.d + 1) * sizeof(float);
    }
  }
  return 0;
}

extern "C" int pcu_flash_tf32_forward(cudaStream_t s, const pcu_flash_args *a, const pcu_tf32_plan *plan, void *ws) {
  pcu_tf32_plan p = *plan;
  const tf32_variant *v = &tf32_variants[p.variant];
  if (p.blocks <= 0) return 0;
  if (!ws) { p.nsplit = 1; p.kchunk = a->k.n; }
  const int64_t blocks = p.blocks * p.nsplit;
  if (blocks > 0x7fffffffLL) return (int)cudaErrorInvalidConfiguration;
  pcu_flash_args f = *a;
  f.causal_offset = pcu_clamp_causal(f.causal_offset, f.q.n, f.k.n);
  float *po = (float *)ws, *pl = NULL;
  if (p.nsplit > 1) {
    pl = po + (size_t)p.nsplit * (size_t)(p.blocks / p.nqt * a->q.n * a->v.d);
    f.out = pcu_dense_view(po, PCU_F32, a->q, a->v.d);
    f.lse = pcu_dense_view(pl, PCU_F32, a->q, 1);
    f.out_scale = 1.0f;
  }
  const int veco = f.out.dtype == PCU_F32 && pcu_rows_aligned(f.out, 4, 16);
  v->kernel<<<(unsigned)blocks, (unsigned)v->threads, v->smem, s>>>(f, p.nqt, pcu_rows_aligned(a->q, 4, 16),
                                                                    pcu_rows_aligned(a->k, 4, 16),
                                                                    pcu_rows_aligned(a->v, 4, 16), veco, p.nsplit, p.kchunk);
  const int e = (int)cudaGetLastError();
  if (e != 0 || p.nsplit == 1) return e;
  return pcu_split_combine(s, a->out, a->lse, po, pl, p.nsplit, a->out_scale);
}
#endif /* host side */

/* Fast mode of the CPU backend: dense attention forward (FLASH/AUTO: tiled with an online
 * softmax, O(threads * tile * d) memory; NAIVE: whole score rows materialised), its backward
 * (flash-style, p recomputed per tile from lse), and block-sparse attention (only active
 * key blocks are visited).
 *
 * Every op converts a tile of its inputs to f32 scratch once (any dtype, any strides) and
 * then runs one register-blocked f32 GEMM microkernel (cpu_fast_gemm) on the tiles:
 * S = Q K^T, O += P V, dP = dO V^T, dV += P^T dO, dK += dS^T Q, dQ += dS K.
 * The hot loops are written with GCC vector extensions and compiled for AVX-512, AVX2+FMA
 * and baseline x86-64 (target_clones), so the library stays portable without -march.
 * Scale is folded into the f32 copy of Q (scale*q rounds once; within SPEC.md section 7). */
#include <math.h>
#include <string.h>

#include "cpu.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define FAST_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FAST_CLONES
#endif
#define ALWAYS_INLINE inline __attribute__((always_inline))

enum { BQ = 64, BK = 64 };

typedef float   v16 __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));
/* memory access type: no alignment assumed, may alias float */
typedef float v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define VLD(p) (*(const v16u *)(const void *)(p))
#define VST(p, x) (*(v16u *)(void *)(p) = (x))
/* The softmax and exp code works on 8 lanes: comparisons of 256-bit vectors compile to
 * vector compares on both AVX2 and AVX-512, where GCC scalarises 512-bit ones on AVX2
 * (and AMD's AVX-512 runs 512-bit operations as two 256-bit halves anyway). */
typedef float   v8 __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define VLD8(p) (*(const v8u *)(const void *)(p))
#define VST8(p, x) (*(v8u *)(void *)(p) = (x))

static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* ---- microkernels ------------------------------------------------------------------ */

/* C[M][N] (+)= A[M][K] * B[K][N] in f32. Element (i, k) of A is A[i*ar + k*ak], so A may
 * be read transposed (dV += P^T dO without a transpose); B and C are row-major with leading
 * dimensions ldb, ldc. M % 4 == 0 and N % 16 == 0 (callers pad their tiles). A 4 x 32 block
 * of C lives in eight 16-wide accumulators while k runs. */
void cpu_fast_gemm(int64_t M, int64_t N, int64_t K, const float *restrict A, int64_t ar,
                   int64_t ak, const float *restrict B, int64_t ldb, float *restrict C,
                   int64_t ldc, int accumulate);
FAST_CLONES void cpu_fast_gemm(int64_t M, int64_t N, int64_t K, const float *restrict A,
                               int64_t ar, int64_t ak, const float *restrict B, int64_t ldb,
                               float *restrict C, int64_t ldc, int accumulate) {
  const v16 zero = {0};
  for (int64_t i = 0; i < M; i += 4) {
    const float *a0 = A + i * ar;
    float *c0 = C + i * ldc, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
    int64_t j = 0;
    for (; j + 32 <= N; j += 32) {
      v16 x00 = zero, x01 = zero, x10 = zero, x11 = zero;
      v16 x20 = zero, x21 = zero, x30 = zero, x31 = zero;
      if (accumulate) {
        x00 = VLD(c0 + j); x01 = VLD(c0 + j + 16);
        x10 = VLD(c1 + j); x11 = VLD(c1 + j + 16);
        x20 = VLD(c2 + j); x21 = VLD(c2 + j + 16);
        x30 = VLD(c3 + j); x31 = VLD(c3 + j + 16);
      }
      const float *b = B + j, *a = a0;
      for (int64_t k = 0; k < K; k++, b += ldb, a += ak) {
        v16 b0 = VLD(b), b1 = VLD(b + 16);
        float s0 = a[0], s1 = a[ar], s2 = a[2 * ar], s3 = a[3 * ar];
        x00 += s0 * b0; x01 += s0 * b1;
        x10 += s1 * b0; x11 += s1 * b1;
        x20 += s2 * b0; x21 += s2 * b1;
        x30 += s3 * b0; x31 += s3 * b1;
      }
      VST(c0 + j, x00); VST(c0 + j + 16, x01);
      VST(c1 + j, x10); VST(c1 + j + 16, x11);
      VST(c2 + j, x20); VST(c2 + j + 16, x21);
      VST(c3 + j, x30); VST(c3 + j + 16, x31);
    }
    for (; j < N; j += 16) {
      v16 x0 = zero, x1 = zero, x2 = zero, x3 = zero;
      if (accumulate) { x0 = VLD(c0 + j); x1 = VLD(c1 + j); x2 = VLD(c2 + j); x3 = VLD(c3 + j); }
      const float *b = B + j, *a = a0;
      for (int64_t k = 0; k < K; k++, b += ldb, a += ak) {
        v16 b0 = VLD(b);
        x0 += a[0] * b0; x1 += a[ar] * b0; x2 += a[2 * ar] * b0; x3 += a[3 * ar] * b0;
      }
      VST(c0 + j, x0); VST(c1 + j, x1); VST(c2 + j, x2); VST(c3 + j, x3);
    }
  }
}

/* x = m ? c : x, lane by lane (m from a vector comparison: all ones or zero) */
static ALWAYS_INLINE void vselect(v8 *x, const v8i *m, float c) {
  const v8 cv = (v8){0} + c;
  *x = (v8)(((v8i)*x & ~*m) | ((v8i)cv & *m));
}

/* exp for 8 lanes: Cephes-style range reduction x = n ln2 + r and a degree-7 polynomial,
 * about 1 ulp. Inputs below the f32 normal range (including -inf) give exactly 0. */
static ALWAYS_INLINE void vexp(v8 *px) {
  v8 x = *px;
  const v8 lo = (v8){0} - 87.33654f, hi = (v8){0} + 88.0f;
  const v8i under = x < lo, over = x > hi;
  vselect(&x, &over, 88.0f);
  vselect(&x, &under, -87.0f);
  const v8 t = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23 rounds to integer */
  const v8 nf = t - 12582912.0f;
  const v8i n = (v8i)t - 0x4B400000;
  v8 r = x - nf * 0.693359375f;
  r = r + nf * 2.12194440e-4f;
  v8 y = r * 1.9875691500e-4f + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  y = y * (v8)((n + 127) << 23);
  *px = (v8)((v8i)y & ~under);
}

/* *mx = max(*mx, 8 floats at p), lane by lane */
static ALWAYS_INLINE void vmax(v8 *mx, const float *p) {
  const v8 x = VLD8(p);
  const v8i gt = x > *mx;
  *mx = (v8)(((v8i)x & gt) | ((v8i)*mx & ~gt));
}

/* Online softmax over one tile of transposed scores St[j][i] (key j, query i; rows x cols,
 * cols % 16 == 0, ld BQ; masked entries -inf), vectorised across queries so no horizontal
 * reductions are needed. Updates each query's running max m and sum l, replaces St by
 * p = exp(s - m_new) and leaves in alpha the factor exp(m_old - m_new) its accumulator row
 * must be rescaled by. A query that has seen no finite score keeps m = -inf, l = 0, p = 0. */
FAST_CLONES static void online_softmax_t(float *restrict St, int64_t rows, int64_t cols,
                                         float *restrict m, float *restrict l,
                                         float *restrict alpha) {
  for (int64_t c = 0; c < cols; c += 16) { /* two 8-lane halves per step, for ILP */
    const v8 mold0 = VLD8(m + c), mold1 = VLD8(m + c + 8);
    /* independent maxima: a single chain would wait on each compare-and-blend */
    v8 mx0 = mold0, mx1 = mold1, my0 = mold0, my1 = mold1;
    int64_t j = 0;
    for (; j + 2 <= rows; j += 2) {
      vmax(&mx0, St + j * BQ + c);
      vmax(&mx1, St + j * BQ + c + 8);
      vmax(&my0, St + (j + 1) * BQ + c);
      vmax(&my1, St + (j + 1) * BQ + c + 8);
    }
    if (j < rows) { vmax(&mx0, St + j * BQ + c); vmax(&mx1, St + j * BQ + c + 8); }
    vmax(&mx0, (const float *)&my0);
    vmax(&mx1, (const float *)&my1);
    /* subtracting 0 instead of -inf keeps empty columns at p = 0 without NaN */
    v8 ms0 = mx0, ms1 = mx1;
    const v8i none0 = mx0 == -INFINITY, none1 = mx1 == -INFINITY;
    vselect(&ms0, &none0, 0.0f);
    vselect(&ms1, &none1, 0.0f);
    v8 sum0 = {0}, sum1 = {0};
    for (int64_t r = 0; r < rows; r++) {
      float *s = St + r * BQ + c;
      v8 x0 = VLD8(s) - ms0, x1 = VLD8(s + 8) - ms1;
      vexp(&x0);
      vexp(&x1);
      VST8(s, x0);
      VST8(s + 8, x1);
      sum0 += x0;
      sum1 += x1;
    }
    v8 al0 = mold0 - ms0, al1 = mold1 - ms1;
    vexp(&al0);
    vexp(&al1);
    VST8(alpha + c, al0);
    VST8(alpha + c + 8, al1);
    VST8(l + c, VLD8(l + c) * al0 + sum0);
    VST8(l + c + 8, VLD8(l + c + 8) * al1 + sum1);
    VST8(m + c, mx0);
    VST8(m + c + 8, mx1);
  }
}

/* Backward: from scores S and dP = dO V^T of one tile, P = exp(S - lse) into S and
 * dS = P * (dP - D) into dP. Columns >= vis(row) and rows >= mr are zeroed by selection
 * (never by multiplication, so garbage in padding cannot leak as NaN). */
FAST_CLONES static void backward_pds(float *restrict S, float *restrict dP, int64_t ld,
                                     int64_t mr, int64_t rows, int64_t w, const float *L,
                                     const float *D, const int64_t *vis) {
  /* column indices as floats (exact below 2^24): a float compare stays a vector compare,
   * where GCC scalarises the 512-bit integer one on some targets */
  const v8 iota = {0, 1, 2, 3, 4, 5, 6, 7};
  for (int64_t r = 0; r < rows; r++) {
    float *s = S + r * ld, *dp = dP + r * ld;
    if (r >= mr || L[r] == -INFINITY || vis[r] <= 0) {
      for (int64_t c = 0; c < w; c += 8) { VST8(s + c, (v8){0}); VST8(dp + c, (v8){0}); }
      continue;
    }
    const float lse = L[r], dd = D[r];
    const float vr = (float)vis[r];
    for (int64_t c = 0; c < w; c += 8) {
      v8 p = VLD8(s + c) - lse;
      vexp(&p);
      const v8i off = (iota + (float)c) >= vr;
      vselect(&p, &off, 0.0f);
      v8 ds = p * (VLD8(dp + c) - dd);
      vselect(&ds, &off, 0.0f);
      VST8(s + c, p);
      VST8(dp + c, ds);
    }
  }
}

/* D = dot(dO, O) of one row, summed in the same order and with the same contraction as the
 * GEMM computes dp = dO v^T, so that dp - D cancels exactly where it should (a row that sees
 * one key has O = v and dS = 0). */
FAST_CLONES static float row_dot(const float *restrict a, const float *restrict b, int64_t n) {
  float x = 0.0f;
  for (int64_t i = 0; i < n; i++) x += a[i] * b[i];
  return x;
}

/* ---- tile loading and storing (dtype conversion happens here, once per element) ----- */

/* dst[0..n) = mul * src row, dst[n..npad) = 0 */
static void load_row(float *restrict dst, const pattn_view *v, int64_t idx, int64_t n,
                     int64_t npad, float mul) {
  switch (v->dtype) {
  case PATTN_F16: {
    const uint16_t *s = (const uint16_t *)v->buf + idx;
    for (int64_t i = 0; i < n; i++) dst[i] = pattn_f16_to_f32(s[i]) * mul;
    break;
  }
  case PATTN_BF16: {
    const uint16_t *s = (const uint16_t *)v->buf + idx;
    for (int64_t i = 0; i < n; i++) dst[i] = pattn_bf16_to_f32(s[i]) * mul;
    break;
  }
  default: {
    const float *s = (const float *)v->buf + idx;
    for (int64_t i = 0; i < n; i++) dst[i] = s[i] * mul;
    break;
  }
  }
  for (int64_t i = n; i < npad; i++) dst[i] = 0.0f;
}

static void store_row(const pattn_view *v, int64_t idx, const float *restrict src, int64_t n,
                      float mul) {
  switch (v->dtype) {
  case PATTN_F16: {
    uint16_t *d = (uint16_t *)v->buf + idx;
    for (int64_t i = 0; i < n; i++) d[i] = pattn_f32_to_f16(src[i] * mul);
    break;
  }
  case PATTN_BF16: {
    uint16_t *d = (uint16_t *)v->buf + idx;
    for (int64_t i = 0; i < n; i++) d[i] = pattn_f32_to_bf16(src[i] * mul);
    break;
  }
  default: {
    float *d = (float *)v->buf + idx;
    for (int64_t i = 0; i < n; i++) d[i] = src[i] * mul;
    break;
  }
  }
}

/* rows [j0, j0+jn) of a K or V view (head ih) into rows of R (ld ldr, zero-padded), and,
 * when T is not NULL, transposed into T[c][jj] (ld BK) for use as a GEMM right operand */
static void load_tile(const pattn_view *v, int64_t ib, int64_t is, int64_t ih, int64_t j0,
                      int64_t jn, float *R, int64_t ldr, float *T) {
  for (int64_t jj = 0; jj < jn; jj++)
    load_row(R + jj * ldr, v, pattn_view_index(v, ib, is, ih, j0 + jj, 0), v->d, ldr, 1.0f);
  if (!T) return;
  for (int64_t c = 0; c < v->d; c++) {
    float *t = T + c * BK;
    for (int64_t jj = 0; jj < jn; jj++) t[jj] = R[jj * ldr + c];
  }
}

/* ---- workspace ---------------------------------------------------------------------- */

typedef struct scratch {
  float *base;
  size_t per_thread; /* floats, multiple of 16 */
  void  *mem;
  size_t bytes;
  int    threads;
} scratch;

static pattn_status scratch_alloc(pattn_context *ctx, const cpu_state *st, size_t per_thread,
                                  scratch *w) {
  /* one slice per pool thread: any thread may pick up any task */
  int nt = st->pool ? st->num_threads : 1;
  if (nt < 1) nt = 1;
  w->per_thread = (per_thread + 15) / 16 * 16;
  w->threads = nt;
  w->bytes = (size_t)nt * w->per_thread * sizeof(float) + 64;
  w->mem = NULL;
  if (cpu_workspace(ctx, w->bytes, &w->mem) != PATTN_OK || !w->mem)
    return cpu_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY,
                           "cpu: cannot allocate %zu bytes of attention workspace", w->bytes);
  /* 64-byte alignment keeps every 16-float row of the tiles on one cache line */
  w->base = (float *)(((uintptr_t)w->mem + 63) & ~(uintptr_t)63);
  memset(w->base, 0, (size_t)nt * w->per_thread * sizeof(float));
  return PATTN_OK;
}

static float *scratch_of(const scratch *w, int thread) {
  return w->base + (size_t)thread * w->per_thread;
}

/* carve n floats (rounded to 16) off a thread's scratch */
static float *carve(float **p, int64_t n) {
  float *r = *p;
  *p += round_up(n, 16);
  return r;
}

/* ---- forward ------------------------------------------------------------------------ */

typedef struct fwd_job {
  const pattn_view *q, *k, *v, *out, *mask, *lse;
  float   scale, out_scale;
  int     causal;
  int64_t off;
  int64_t nb, ns, hq, nq, nk, dk, dv, dkp, dvp, group;
  int64_t bq, sw;    /* query rows per task (BQ); score rows per tile (BK, or padded nk for NAIVE) */
  int64_t nqblk;
  int     naive;
  /* block sparse: query block I sees key block J iff layout[(lh ? ih : 0)][I][J] */
  const uint8_t *layout;
  int64_t bs, nqb, nkb;
  int     lh;
  scratch ws;
} fwd_job;

static size_t fwd_floats(int64_t sw, int64_t dkp, int64_t dvp) {
  return (size_t)(dkp * BQ + BK * dkp + BK * dvp + sw * BQ + BQ * dvp + 3 * BQ);
}

/* Scores a query may not see become -inf and the mask is added, in the transposed tile
 * St[j][i] (keys j0.., queries i0..). Needed only on tiles that cross the causal diagonal
 * or when there is a mask. */
static void fix_tile(const fwd_job *J, float *St, int64_t rows, int64_t mr, int64_t cols,
                     int64_t ib, int64_t ih, int64_t i0, int64_t j0) {
  const pattn_view *mk = J->mask;
  for (int64_t j = 0; j < rows; j++) {
    float *s = St + j * BQ;
    int64_t first = 0; /* first query that sees key j0 + j: j0 + j <= i + off */
    if (J->causal) first = max64(0, min64(cols, j0 + j - J->off - i0));
    for (int64_t i = 0; i < first; i++) s[i] = -INFINITY;
    if (!mk) continue;
    int64_t idx = pattn_view_index(mk, mk->nb > 1 ? ib : 0, 0, mk->nh > 1 ? ih : 0, i0, j0 + j);
    for (int64_t i = first; i < mr; i++)
      s[i] += pattn_load(mk->buf, mk->dtype, idx + i * mk->sn);
  }
}

/* Attention for query rows [i0, i0+mr) of (ib, is, ih). lrow: the block-sparse layout row
 * of these queries (NULL: dense). Scores are computed transposed, St = K (scale Q)^T, so
 * that f32 K and V rows are GEMM operands read in place (no copy) and the softmax runs
 * across queries in vector lanes. */
static void fwd_rows(const fwd_job *J, int thread, int64_t ib, int64_t is, int64_t ih,
                     int64_t i0, int64_t mr, const uint8_t *lrow) {
  const int64_t dk = J->dk, dv = J->dv, dkp = J->dkp, dvp = J->dvp;
  const int64_t ihk = ih / J->group, mr4 = round_up(mr, 4), cols = round_up(mr, 16);
  const pattn_view *kv = J->k, *vv = J->v;
  float *p = scratch_of(&J->ws, thread);
  float *Qt = carve(&p, dkp * BQ), *Kr = carve(&p, BK * dkp), *Vs = carve(&p, BK * dvp);
  float *S = carve(&p, J->sw * BQ), *O = carve(&p, BQ * dvp);
  float *m = carve(&p, BQ), *l = carve(&p, BQ), *alpha = carve(&p, BQ);

  /* Qt[c][i] = scale * q[i][c]; Kr is free until the first tile: use it as the row buffer */
  memset(Qt, 0, (size_t)(dk * BQ) * sizeof(float));
  for (int64_t r = 0; r < mr; r++) {
    load_row(Kr, J->q, pattn_view_index(J->q, ib, is, ih, i0 + r, 0), dk, dk, J->scale);
    for (int64_t c = 0; c < dk; c++) Qt[c * BQ + r] = Kr[c];
  }
  memset(O, 0, (size_t)(mr4 * dvp) * sizeof(float));
  for (int64_t r = 0; r < cols; r++) { m[r] = -INFINITY; l[r] = 0.0f; }

  /* f32 K rows serve in place as the GEMM's left operand; V rows as its right operand
   * when dv is a multiple of 16 (the GEMM reads whole 16-column panels) */
  const int k_direct = kv->dtype == PATTN_F32, v_direct = vv->dtype == PATTN_F32 && dv % 16 == 0;

  /* keys any row of the block may see */
  int64_t kend = J->nk;
  if (J->causal) kend = max64(0, min64(kend, i0 + mr - 1 + J->off + 1));

  int64_t jb = 0, done = 0;
  while (!done) {
    int64_t r0, r1;
    if (!lrow) {
      r0 = 0; r1 = kend; done = 1;
    } else { /* next run of active key blocks */
      while (jb < J->nkb && !lrow[jb]) jb++;
      if (jb >= J->nkb) break;
      r0 = jb * J->bs;
      while (jb < J->nkb && lrow[jb]) jb++;
      r1 = min64(jb * J->bs, kend);
    }
    for (int64_t j0 = r0; j0 < r1; j0 += BK) {
      const int64_t jn = min64(BK, r1 - j0), jn4 = round_up(jn, 4);
      float *St = J->naive ? S + j0 * BQ : S;
      if (k_direct && jn == jn4) {
        const float *kp = (const float *)kv->buf + pattn_view_index(kv, ib, is, ihk, j0, 0);
        cpu_fast_gemm(jn4, cols, dk, kp, kv->sn, 1, Qt, BQ, St, BQ, 0);
      } else {
        load_tile(kv, ib, is, ihk, j0, jn, Kr, dkp, NULL);
        memset(Kr + jn * dkp, 0, (size_t)((jn4 - jn) * dkp) * sizeof(float));
        cpu_fast_gemm(jn4, cols, dk, Kr, dkp, 1, Qt, BQ, St, BQ, 0);
      }
      if (J->mask || (J->causal && j0 + jn - 1 > i0 + J->off))
        fix_tile(J, St, jn, mr, cols, ib, ih, i0, j0);
      if (J->naive) continue;
      online_softmax_t(St, jn, cols, m, l, alpha);
      for (int64_t r = 0; r < mr; r++) {
        if (alpha[r] == 1.0f) continue;
        float *o = O + r * dvp;
        for (int64_t c = 0; c < dvp; c += 16) VST(o + c, VLD(o + c) * alpha[r]);
      }
      if (v_direct) {
        const float *vp = (const float *)vv->buf + pattn_view_index(vv, ib, is, ihk, j0, 0);
        cpu_fast_gemm(mr4, dvp, jn, St, 1, BQ, vp, vv->sn, O, dvp, 1);
      } else {
        load_tile(vv, ib, is, ihk, j0, jn, Vs, dvp, NULL);
        cpu_fast_gemm(mr4, dvp, jn, St, 1, BQ, Vs, dvp, O, dvp, 1);
      }
    }
  }
  if (J->naive && kend > 0) {
    /* the whole rows at once: an online softmax over one tile is the plain softmax */
    online_softmax_t(S, kend, cols, m, l, alpha);
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
      const int64_t jn = min64(BK, kend - j0);
      if (v_direct) {
        const float *vp = (const float *)vv->buf + pattn_view_index(vv, ib, is, ihk, j0, 0);
        cpu_fast_gemm(mr4, dvp, jn, S + j0 * BQ, 1, BQ, vp, vv->sn, O, dvp, 1);
      } else {
        load_tile(vv, ib, is, ihk, j0, jn, Vs, dvp, NULL);
        cpu_fast_gemm(mr4, dvp, jn, S + j0 * BQ, 1, BQ, Vs, dvp, O, dvp, 1);
      }
    }
  }

  for (int64_t r = 0; r < mr; r++) {
    const int64_t gi = i0 + r;
    const int64_t oidx = pattn_view_index(J->out, ib, is, ih, gi, 0);
    float lse = -INFINITY;
    if (l[r] > 0.0f) {
      store_row(J->out, oidx, O + r * dvp, dv, J->out_scale / l[r]);
      lse = m[r] + logf(l[r]);
    } else {
      store_row(J->out, oidx, O + r * dvp, dv, 0.0f); /* O is 0 here: no key was visible */
    }
    if (J->lse)
      pattn_store(J->lse->buf, J->lse->dtype, pattn_view_index(J->lse, ib, is, ih, gi, 0), lse);
  }
}

static void fwd_task(void *arg, int64_t task, int thread) {
  const fwd_job *J = arg;
  const int64_t heads = J->nb * J->ns * J->hq;
  int64_t qb, rest;
  if (J->causal) { /* heaviest query blocks (the last ones) first: better balance */
    qb = J->nqblk - 1 - task / heads;
    rest = task % heads;
  } else {         /* neighbouring tasks share a head: K/V stay in cache */
    qb = task % J->nqblk;
    rest = task / J->nqblk;
  }
  const int64_t ih = rest % J->hq, is = (rest / J->hq) % J->ns, ib = rest / (J->hq * J->ns);
  const int64_t i0 = qb * J->bq;
  fwd_rows(J, thread, ib, is, ih, i0, min64(J->bq, J->nq - i0), NULL);
}

static void fwd_setup(fwd_job *J, const pattn_view *q, const pattn_view *k, const pattn_view *v,
                      const pattn_view *out) {
  J->q = q; J->k = k; J->v = v; J->out = out;
  J->nb = q->nb; J->ns = q->ns; J->hq = q->nh; J->nq = q->n; J->nk = k->n;
  J->dk = q->d; J->dv = v->d;
  J->dkp = round_up(J->dk, 16); J->dvp = round_up(J->dv, 16);
  J->group = k->nh > 0 && q->nh >= k->nh ? q->nh / k->nh : 1;
  if (J->group < 1) J->group = 1;
}

pattn_status cpu_fast_attention(pattn_context *ctx, const pattn_attn_args *a) {
  const cpu_state *st = cpu_state_of(ctx);
  fwd_job J;
  memset(&J, 0, sizeof J);
  fwd_setup(&J, &a->q, &a->k, &a->v, &a->out);
  J.mask = a->mask; J.lse = a->lse;
  J.scale = a->scale; J.out_scale = a->out_scale;
  J.causal = a->causal; J.off = a->causal_offset;
  J.naive = a->algo == PATTN_ALGO_NAIVE;
  J.bq = BQ;
  J.sw = J.naive ? max64(BK, round_up(J.nk, BK)) : BK;
  J.nqblk = (J.nq + J.bq - 1) / J.bq;
  const int64_t ntasks = J.nb * J.ns * J.hq * J.nqblk;
  if (ntasks <= 0) return PATTN_OK;
  pattn_status s = scratch_alloc(ctx, st, fwd_floats(J.sw, J.dkp, J.dvp), &J.ws);
  if (s != PATTN_OK) return s;
  cpu_parallel_for(st, ntasks, fwd_task, &J);
  cpu_workspace_free(ctx, J.ws.mem, J.ws.bytes);
  return PATTN_OK;
}

/* ---- block sparse ------------------------------------------------------------------- */

static void sparse_task(void *arg, int64_t task, int thread) {
  const fwd_job *J = arg;
  const int64_t I = task % J->nqb, rest = task / J->nqb;
  const int64_t ih = rest % J->hq, ib = rest / J->hq;
  const uint8_t *lrow = J->layout + ((J->lh ? ih : 0) * J->nqb + I) * J->nkb;
  const int64_t end = min64((I + 1) * J->bs, J->nq);
  for (int64_t i0 = I * J->bs; i0 < end; i0 += J->bq)
    fwd_rows(J, thread, ib, 0, ih, i0, min64(J->bq, end - i0), lrow);
}

pattn_status cpu_fast_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a) {
  const cpu_state *st = cpu_state_of(ctx);
  fwd_job J;
  memset(&J, 0, sizeof J);
  fwd_setup(&J, &a->q, &a->k, &a->v, &a->out);
  J.ns = 1;
  J.scale = a->scale; J.out_scale = 1.0f;
  J.causal = a->causal; J.off = a->causal_offset;
  J.layout = a->layout; J.bs = a->block_size > 0 ? a->block_size : 1;
  J.nqb = a->nqb; J.nkb = a->nkb; J.lh = a->layout_heads > 1;
  J.bq = BQ; J.sw = BK;
  const int64_t ntasks = J.nb * J.hq * J.nqb;
  if (ntasks <= 0) return PATTN_OK;
  pattn_status s = scratch_alloc(ctx, st, fwd_floats(J.sw, J.dkp, J.dvp), &J.ws);
  if (s != PATTN_OK) return s;
  cpu_parallel_for(st, ntasks, sparse_task, &J);
  cpu_workspace_free(ctx, J.ws.mem, J.ws.bytes);
  return PATTN_OK;
}

/* ---- backward ----------------------------------------------------------------------- */

typedef struct bwd_job {
  const pattn_attn_bwd_args *a;
  int64_t nb, ns, hq, hkv, nq, nk, dk, dv, dkp, dvp, group, nqblk, nkblk;
  scratch ws;
} bwd_job;

typedef struct bwd_tiles {
  float *Kr, *Kt, *Vr, *Vt, *dKQ, *dV, *Qs, *dOs, *Orow, *S, *dP, *L, *D;
  int64_t *vis;
} bwd_tiles;

static size_t bwd_floats(int64_t dkp, int64_t dvp) {
  return (size_t)(4 * BK * dkp + 4 * BK * dvp + BQ * dkp + BQ * dvp + dvp + 2 * BQ * BK +
                  2 * BQ + 2 * BQ + 7 * 16);
}

static bwd_tiles bwd_carve(const bwd_job *J, int thread) {
  float *p = scratch_of(&J->ws, thread);
  bwd_tiles t;
  t.Kr = carve(&p, BK * J->dkp); t.Kt = carve(&p, J->dkp * BK);
  t.Vr = carve(&p, BK * J->dvp); t.Vt = carve(&p, J->dvp * BK);
  t.dKQ = carve(&p, BK * J->dkp); t.dV = carve(&p, BK * J->dvp);
  t.Qs = carve(&p, BQ * J->dkp); t.dOs = carve(&p, BQ * J->dvp); t.Orow = carve(&p, J->dvp);
  t.S = carve(&p, BQ * BK); t.dP = carve(&p, BQ * BK);
  t.L = carve(&p, BQ); t.D = carve(&p, BQ);
  t.vis = (int64_t *)(void *)carve(&p, 2 * BQ);
  return t;
}

/* Q (scaled), dO, lse and D = rowsum(dO * O) of query rows [i0, i0+mr), padded to mr4 */
static void bwd_load_rows(const bwd_job *J, const bwd_tiles *t, int64_t ib, int64_t is,
                          int64_t ih, int64_t i0, int64_t mr) {
  const pattn_attn_bwd_args *a = J->a;
  const int64_t mr4 = round_up(mr, 4);
  for (int64_t r = 0; r < mr; r++) {
    const int64_t gi = i0 + r;
    load_row(t->Qs + r * J->dkp, &a->q, pattn_view_index(&a->q, ib, is, ih, gi, 0), J->dk, J->dkp, a->scale);
    float *dO = t->dOs + r * J->dvp;
    load_row(dO, &a->dout, pattn_view_index(&a->dout, ib, is, ih, gi, 0), J->dv, J->dvp, 1.0f);
    load_row(t->Orow, &a->out, pattn_view_index(&a->out, ib, is, ih, gi, 0), J->dv, J->dvp, 1.0f);
    t->D[r] = row_dot(dO, t->Orow, J->dv);
    t->L[r] = pattn_load(a->lse.buf, a->lse.dtype, pattn_view_index(&a->lse, ib, is, ih, gi, 0));
  }
  memset(t->Qs + mr * J->dkp, 0, (size_t)((mr4 - mr) * J->dkp) * sizeof(float));
  memset(t->dOs + mr * J->dvp, 0, (size_t)((mr4 - mr) * J->dvp) * sizeof(float));
}

/* S = Q K^T, dP = dO V^T, then P and dS of the tile (query rows i0.., keys j0..j0+jn) */
static void bwd_tile_pds(const bwd_job *J, const bwd_tiles *t, int64_t i0, int64_t mr,
                         int64_t j0, int64_t jn) {
  const pattn_attn_bwd_args *a = J->a;
  const int64_t mr4 = round_up(mr, 4), w = round_up(jn, 16);
  cpu_fast_gemm(mr4, w, J->dk, t->Qs, J->dkp, 1, t->Kt, BK, t->S, BK, 0);
  cpu_fast_gemm(mr4, w, J->dv, t->dOs, J->dvp, 1, t->Vt, BK, t->dP, BK, 0);
  for (int64_t r = 0; r < mr4; r++)
    t->vis[r] = a->causal ? max64(0, min64(jn, i0 + r + a->causal_offset - j0 + 1)) : jn;
  backward_pds(t->S, t->dP, BK, mr, mr4, w, t->L, t->D, t->vis);
}

/* dK, dV of key rows [j0, j0+BK) of kv head ihk, summed over the query heads of its group:
 * one task owns these rows, so no two threads write the same dK/dV. */
static void bwd_kv_task(void *arg, int64_t task, int thread) {
  const bwd_job *J = arg;
  const pattn_attn_bwd_args *a = J->a;
  const int64_t heads = J->nb * J->ns * J->hkv;
  const int64_t kb = task / heads, rest = task % heads; /* early key blocks (heaviest under causal) first */
  const int64_t ihk = rest % J->hkv, is = (rest / J->hkv) % J->ns, ib = rest / (J->hkv * J->ns);
  const int64_t j0 = kb * BK, jn = min64(BK, J->nk - j0), w = round_up(jn, 16);
  bwd_tiles t = bwd_carve(J, thread);

  load_tile(&a->k, ib, is, ihk, j0, jn, t.Kr, J->dkp, t.Kt);
  load_tile(&a->v, ib, is, ihk, j0, jn, t.Vr, J->dvp, t.Vt);
  memset(t.dKQ, 0, (size_t)(BK * J->dkp) * sizeof(float));
  memset(t.dV, 0, (size_t)(BK * J->dvp) * sizeof(float));
  /* first query row that sees key j0: j0 <= i + off */
  const int64_t qstart = a->causal ? max64(0, j0 - a->causal_offset) : 0;
  for (int64_t g = 0; g < J->group; g++) {
    const int64_t ih = ihk * J->group + g;
    for (int64_t i0 = qstart; i0 < J->nq; i0 += BQ) {
      const int64_t mr = min64(BQ, J->nq - i0);
      bwd_load_rows(J, &t, ib, is, ih, i0, mr);
      bwd_tile_pds(J, &t, i0, mr, j0, jn);
      /* dV += P^T dO, dK += dS^T (scale q): A read transposed from the row-major tiles */
      cpu_fast_gemm(w, J->dvp, mr, t.S, 1, BK, t.dOs, J->dvp, t.dV, J->dvp, 1);
      cpu_fast_gemm(w, J->dkp, mr, t.dP, 1, BK, t.Qs, J->dkp, t.dKQ, J->dkp, 1);
    }
  }
  for (int64_t jj = 0; jj < jn; jj++) {
    store_row(&a->dk, pattn_view_index(&a->dk, ib, is, ihk, j0 + jj, 0), t.dKQ + jj * J->dkp, J->dk, 1.0f);
    store_row(&a->dv, pattn_view_index(&a->dv, ib, is, ihk, j0 + jj, 0), t.dV + jj * J->dvp, J->dv, 1.0f);
  }
}

/* dQ of query rows [i0, i0+BQ) of head ih */
static void bwd_q_task(void *arg, int64_t task, int thread) {
  const bwd_job *J = arg;
  const pattn_attn_bwd_args *a = J->a;
  const int64_t heads = J->nb * J->ns * J->hq;
  const int64_t qb = J->nqblk - 1 - task / heads, rest = task % heads; /* last (heaviest) first */
  const int64_t ih = rest % J->hq, is = (rest / J->hq) % J->ns, ib = rest / (J->hq * J->ns);
  const int64_t ihk = ih / J->group, i0 = qb * BQ, mr = min64(BQ, J->nq - i0);
  const int64_t mr4 = round_up(mr, 4);
  bwd_tiles t = bwd_carve(J, thread);

  bwd_load_rows(J, &t, ib, is, ih, i0, mr);
  memset(t.dKQ, 0, (size_t)(BQ * J->dkp) * sizeof(float));
  int64_t kend = J->nk;
  if (a->causal) kend = max64(0, min64(kend, i0 + mr - 1 + a->causal_offset + 1));
  for (int64_t j0 = 0; j0 < kend; j0 += BK) {
    const int64_t jn = min64(BK, kend - j0);
    load_tile(&a->k, ib, is, ihk, j0, jn, t.Kr, J->dkp, t.Kt);
    load_tile(&a->v, ib, is, ihk, j0, jn, t.Vr, J->dvp, t.Vt);
    bwd_tile_pds(J, &t, i0, mr, j0, jn);
    cpu_fast_gemm(mr4, J->dkp, jn, t.dP, BK, 1, t.Kr, J->dkp, t.dKQ, J->dkp, 1);
  }
  for (int64_t r = 0; r < mr; r++)
    store_row(&a->dq, pattn_view_index(&a->dq, ib, is, ih, i0 + r, 0), t.dKQ + r * J->dkp, J->dk, a->scale);
}

pattn_status cpu_fast_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a) {
  const cpu_state *st = cpu_state_of(ctx);
  bwd_job J;
  memset(&J, 0, sizeof J);
  J.a = a;
  J.nb = a->q.nb; J.ns = a->q.ns; J.hq = a->q.nh; J.hkv = a->k.nh;
  J.nq = a->q.n; J.nk = a->k.n; J.dk = a->q.d; J.dv = a->v.d;
  J.dkp = round_up(J.dk, 16); J.dvp = round_up(J.dv, 16);
  J.group = J.hkv > 0 && J.hq >= J.hkv ? J.hq / J.hkv : 1;
  J.nqblk = (J.nq + BQ - 1) / BQ;
  J.nkblk = (J.nk + BK - 1) / BK;
  const int64_t nkv_tasks = J.nb * J.ns * J.hkv * J.nkblk, nq_tasks = J.nb * J.ns * J.hq * J.nqblk;
  const int64_t most = max64(nkv_tasks, nq_tasks);
  if (most <= 0) return PATTN_OK;
  pattn_status s = scratch_alloc(ctx, st, bwd_floats(J.dkp, J.dvp), &J.ws);
  if (s != PATTN_OK) return s;
  cpu_parallel_for(st, nkv_tasks, bwd_kv_task, &J);
  cpu_parallel_for(st, nq_tasks, bwd_q_task, &J);
  cpu_workspace_free(ctx, J.ws.mem, J.ws.bytes);
  return PATTN_OK;
}

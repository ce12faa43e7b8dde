/* Fast mode of the CPU backend: linear (blocked, threaded GEMM), layernorm and md-LRPE
 * cosine (threaded over rows). All arithmetic in f32 (layernorm statistics in f64, cheap
 * next to the memory traffic); inputs of any dtype are converted once per element. */
#include <math.h>
#include <string.h>

#include "cpu.h"


static inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* dst[0..n) = elements [idx, idx+n) of a matrix, converted to f32 */
static void mat_load(float *restrict dst, pattn_mat m, int64_t idx, int64_t n) {
  idx += m.offset;
  switch (m.dtype) {
  case PATTN_F16: {
    const uint16_t *s = (const uint16_t *)m.buf + idx;
    for (int64_t i = 0; i < n; i++) dst[i] = pattn_f16_to_f32(s[i]);
    break;
  }
  case PATTN_BF16: {
    const uint16_t *s = (const uint16_t *)m.buf + idx;
    for (int64_t i = 0; i < n; i++) dst[i] = pattn_bf16_to_f32(s[i]);
    break;
  }
  default:
    memcpy(dst, (const float *)m.buf + idx, (size_t)n * sizeof(float));
    break;
  }
}

static void mat_store(pattn_mat m, int64_t idx, const float *restrict src, int64_t n) {
  idx += m.offset;
  switch (m.dtype) {
  case PATTN_F16: {
    uint16_t *d = (uint16_t *)m.buf + idx;
    for (int64_t i = 0; i < n; i++) d[i] = pattn_f32_to_f16(src[i]);
    break;
  }
  case PATTN_BF16: {
    uint16_t *d = (uint16_t *)m.buf + idx;
    for (int64_t i = 0; i < n; i++) d[i] = pattn_f32_to_bf16(src[i]);
    break;
  }
  default:
    memcpy((float *)m.buf + idx, src, (size_t)n * sizeof(float));
    break;
  }
}

static pattn_status ws_get(pattn_context *ctx, size_t floats, void **mem, size_t *bytes,
                           float **base, const char *what) {
  *bytes = floats * sizeof(float) + 64;
  *mem = NULL;
  *base = NULL;
  if (cpu_workspace(ctx, *bytes, mem) != PATTN_OK || !*mem)
    return cpu_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "cpu: cannot allocate %zu bytes of %s workspace",
                           *bytes, what);
  *base = (float *)(((uintptr_t)*mem + 63) & ~(uintptr_t)63);
  return PATTN_OK;
}

static int pool_threads(const cpu_state *st) {
  return st->pool && st->num_threads > 1 ? st->num_threads : 1;
}

/* ---- linear: y = x W^T + b ------------------------------------------------------------ */

/* One task computes a LM x LN block of y, walking k in LK steps: a block of x (converted,
 * rows padded to 4) and a transposed LK x LN panel of W (columns padded to 16) in scratch,
 * small enough to stay in L2 while the microkernel runs over them. */
enum { LM = 256, LN = 64, LK = 256 };

typedef struct lin_job {
  int64_t m, n, k, nblk;
  pattn_mat x, w, bias, y;
  float  *ws;
  size_t  per_thread;
} lin_job;

static void linear_task(void *arg, int64_t task, int thread) {
  const lin_job *J = arg;
  const int64_t m0 = task / J->nblk * LM, n0 = task % J->nblk * LN;
  const int64_t mm = min64(LM, J->m - m0), nn = min64(LN, J->n - n0);
  const int64_t mm4 = round_up(mm, 4), nn16 = round_up(nn, 16);
  float *Xs = J->ws + (size_t)thread * J->per_thread, *Wt = Xs + LM * LK, *C = Wt + LK * LN;
  float *row = C + LM * LN;

  memset(C, 0, sizeof(float) * LM * LN);
  for (int64_t k0 = 0; k0 < J->k; k0 += LK) {
    const int64_t kb = min64(LK, J->k - k0);
    for (int64_t r = 0; r < mm; r++) mat_load(Xs + r * LK, J->x, (m0 + r) * J->k + k0, kb);
    memset(Xs + mm * LK, 0, sizeof(float) * (size_t)((mm4 - mm) * LK));
    for (int64_t c = 0; c < nn; c++) {
      mat_load(row, J->w, (n0 + c) * J->k + k0, kb);
      for (int64_t kk = 0; kk < kb; kk++) Wt[kk * LN + c] = row[kk];
    }
    for (int64_t kk = 0; kk < kb; kk++)
      for (int64_t c = nn; c < nn16; c++) Wt[kk * LN + c] = 0.0f;
    cpu_fast_gemm(mm4, nn16, kb, Xs, LK, 1, Wt, LN, C, LN, 1);
  }
  if (J->bias.buf) mat_load(row, J->bias, n0, nn);
  else memset(row, 0, sizeof(float) * (size_t)nn);
  for (int64_t r = 0; r < mm; r++) {
    float *c = C + r * LN;
    for (int64_t j = 0; j < nn; j++) c[j] += row[j];
    mat_store(J->y, (m0 + r) * J->n + n0, c, nn);
  }
}

pattn_status cpu_fast_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x,
                             pattn_mat w, pattn_mat bias, pattn_mat y) {
  const cpu_state *st = cpu_state_of(ctx);
  if (m <= 0 || n <= 0) return PATTN_OK;
  lin_job J = {m, n, k, (n + LN - 1) / LN, x, w, bias, y, NULL, 0};
  J.per_thread = (size_t)(LM * LK + LK * LN + LM * LN + LK);
  void *mem;
  size_t bytes;
  pattn_status s = ws_get(ctx, J.per_thread * (size_t)pool_threads(st), &mem, &bytes, &J.ws, "linear");
  if (s != PATTN_OK) return s;
  cpu_parallel_for(st, (m + LM - 1) / LM * J.nblk, linear_task, &J);
  cpu_workspace_free(ctx, mem, bytes);
  return PATTN_OK;
}

/* ---- layernorm ------------------------------------------------------------------------ */

enum { LN_ROWS = 8 }; /* rows per task: enough work to amortise the dispatch */

typedef struct ln_job {
  int64_t   rows, cols;
  float     eps;
  pattn_mat x, y;
  const float *gamma, *beta; /* converted once, NULL: absent */
  float    *ws;              /* one row per thread */
} ln_job;

static void layernorm_task(void *arg, int64_t task, int thread) {
  const ln_job *J = arg;
  const int64_t cols = J->cols;
  float *row = J->ws + (size_t)thread * (size_t)round_up(cols, 16);
  for (int64_t r = task * LN_ROWS; r < min64(J->rows, (task + 1) * LN_ROWS); r++) {
    /* the row is read completely before y is written: y may be x */
    mat_load(row, J->x, r * cols, cols);
    double sum = 0.0;
    for (int64_t c = 0; c < cols; c++) sum += row[c];
    const double mean = sum / (double)cols;
    double var = 0.0;
    for (int64_t c = 0; c < cols; c++) var += ((double)row[c] - mean) * ((double)row[c] - mean);
    var /= (double)cols;
    const float fm = (float)mean, rstd = (float)(1.0 / sqrt(var + (double)J->eps));
    for (int64_t c = 0; c < cols; c++) {
      float v = (row[c] - fm) * rstd;
      if (J->gamma) v *= J->gamma[c];
      if (J->beta) v += J->beta[c];
      row[c] = v;
    }
    mat_store(J->y, r * cols, row, cols);
  }
}

pattn_status cpu_fast_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps,
                                pattn_mat x, pattn_mat gamma, pattn_mat beta, pattn_mat y) {
  const cpu_state *st = cpu_state_of(ctx);
  if (rows <= 0 || cols <= 0) return PATTN_OK;
  const int64_t cp = round_up(cols, 16);
  void *mem;
  size_t bytes;
  float *ws = NULL;
  pattn_status s = ws_get(ctx, (size_t)(cp * (pool_threads(st) + 2)), &mem, &bytes, &ws, "layernorm");
  if (s != PATTN_OK) return s;
  ln_job J = {rows, cols, eps, x, y, NULL, NULL, ws + 2 * cp};
  if (gamma.buf) { mat_load(ws, gamma, 0, cols); J.gamma = ws; }
  if (beta.buf) { mat_load(ws + cp, beta, 0, cols); J.beta = ws + cp; }
  cpu_parallel_for(st, (rows + LN_ROWS - 1) / LN_ROWS, layernorm_task, &J);
  cpu_workspace_free(ctx, mem, bytes);
  return PATTN_OK;
}

/* ---- md LRPE cosine ------------------------------------------------------------------- */

/* One task is (head, row t) for every batch: the angles and their cos/sin are computed once
 * and applied to all b. Full-accuracy sinf/cosf: angles reach 1e5 rad (SPEC.md section 6). */
typedef struct lrpe_job {
  const pattn_lrpe_args *a;
  int    backward;
  float *ws; /* 3 * dp floats per thread: angle, cos, sin */
  int64_t dp;
} lrpe_job;

static void lrpe_task(void *arg, int64_t task, int thread) {
  const lrpe_job *J = arg;
  const pattn_lrpe_args *a = J->a;
  const int64_t hh = task / a->n, t = task % a->n, d = a->d, e = a->e;
  float *ang = J->ws + (size_t)thread * 3 * (size_t)J->dp, *cs = ang + J->dp, *sn = cs + J->dp;
  float *io = ang; /* reused as the row buffer once cos/sin are known */

  if (J->backward && a->cache.buf) {
    mat_load(ang, a->cache, (hh * a->n + t) * d, d);
  } else if (t < a->extra_tokens) {
    for (int64_t k = 0; k < d; k++) ang[k] = 0.0f;
  } else {
    int64_t p[PATTN_MAX_DIMS];
    cpu_lrpe_positions(a, t, p);
    for (int64_t k = 0; k < d; k++) {
      const float th = pattn_load(a->theta.buf, a->theta.dtype, a->theta.offset + hh * e + k % e);
      ang[k] = (float)p[k / e] * th; /* one f32 multiply, as SPEC.md prescribes */
    }
  }
  if (!J->backward && a->cache.buf) mat_store(a->cache, (hh * a->n + t) * d, ang, d);
  for (int64_t k = 0; k < d; k++) { cs[k] = cosf(ang[k]); sn[k] = sinf(ang[k]); }

  for (int64_t b = 0; b < a->b; b++) {
    const int64_t row = (b * a->h + hh) * a->n + t;
    if (!J->backward) {
      float tmp[64];
      mat_load(io, a->in, row * d, d);
      for (int64_t k0 = 0; k0 < d; k0 += 64) { /* sin half first: it needs x */
        const int64_t kn = min64(64, d - k0);
        for (int64_t k = 0; k < kn; k++) tmp[k] = io[k0 + k] * sn[k0 + k];
        mat_store(a->out, row * 2 * d + d + k0, tmp, kn);
      }
      for (int64_t k = 0; k < d; k++) io[k] *= cs[k];
      mat_store(a->out, row * 2 * d, io, d);
    } else {
      float tmp[64];
      for (int64_t k0 = 0; k0 < d; k0 += 64) {
        const int64_t kn = min64(64, d - k0);
        float dc[64], ds[64];
        mat_load(dc, a->in, row * 2 * d + k0, kn);
        mat_load(ds, a->in, row * 2 * d + d + k0, kn);
        for (int64_t k = 0; k < kn; k++) tmp[k] = dc[k] * cs[k0 + k] + ds[k] * sn[k0 + k];
        mat_store(a->out, row * d + k0, tmp, kn);
      }
    }
  }
}

static pattn_status lrpe_run(pattn_context *ctx, const pattn_lrpe_args *a, int backward) {
  const cpu_state *st = cpu_state_of(ctx);
  if (a->h <= 0 || a->n <= 0 || a->d <= 0) return PATTN_OK;
  lrpe_job J = {a, backward, NULL, round_up(a->d, 16)};
  void *mem;
  size_t bytes;
  pattn_status s = ws_get(ctx, (size_t)(3 * J.dp * pool_threads(st)), &mem, &bytes, &J.ws, "lrpe");
  if (s != PATTN_OK) return s;
  cpu_parallel_for(st, a->h * a->n, lrpe_task, &J);
  cpu_workspace_free(ctx, mem, bytes);
  return PATTN_OK;
}

pattn_status cpu_fast_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a) {
  return lrpe_run(ctx, a, 0);
}

pattn_status cpu_fast_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a) {
  return lrpe_run(ctx, a, 1);
}

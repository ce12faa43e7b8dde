/* Reference linear, LayerNorm and md-LRPE (SPEC.md sections 5 and 6): straight loops in
 * double, rounded once at the store. */
#include <math.h>
#include <stdlib.h>

#include "cpu.h"

static inline double mat_get(const pattn_mat *m, int64_t i) {
  return pattn_load(m->buf, m->dtype, m->offset + i);
}
static inline void mat_set(const pattn_mat *m, int64_t i, double x) {
  pattn_store_f64(m->buf, m->dtype, m->offset + i, x);
}

pattn_status cpu_ref_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x,
                            pattn_mat w, pattn_mat bias, pattn_mat y) {
  (void)ctx;
  for (int64_t r = 0; r < m; r++)
    for (int64_t c = 0; c < n; c++) {
      double s = bias.buf ? mat_get(&bias, c) : 0.0;
      for (int64_t t = 0; t < k; t++) s += mat_get(&x, r * k + t) * mat_get(&w, c * k + t);
      mat_set(&y, r * n + c, s);
    }
  return PATTN_OK;
}

/* Each row is read into a double buffer before anything is written, so y may alias x. */
pattn_status cpu_ref_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps,
                               pattn_mat x, pattn_mat gamma, pattn_mat beta, pattn_mat y) {
  if (rows <= 0 || cols <= 0) return PATTN_OK;
  double *row = malloc((size_t)cols * sizeof(double));
  if (!row) return cpu_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "cpu reference layernorm: out of memory");
  for (int64_t r = 0; r < rows; r++) {
    double mean = 0.0, var = 0.0;
    for (int64_t c = 0; c < cols; c++) mean += row[c] = mat_get(&x, r * cols + c);
    mean /= (double)cols;
    for (int64_t c = 0; c < cols; c++) var += (row[c] - mean) * (row[c] - mean);
    var /= (double)cols; /* biased, like PyTorch */
    double inv = 1.0 / sqrt(var + (double)eps);
    for (int64_t c = 0; c < cols; c++) {
      double g = gamma.buf ? mat_get(&gamma, c) : 1.0, b = beta.buf ? mat_get(&beta, c) : 0.0;
      mat_set(&y, r * cols + c, (row[c] - mean) * inv * g + b);
    }
  }
  free(row);
  return PATTN_OK;
}

/* The f32 angle of head h, row t, column k: one f32 multiply, exactly as SPEC.md says. */
static float lrpe_angle(const pattn_lrpe_args *a, int64_t h, int64_t t, int64_t k, const int64_t *p) {
  if (t < a->extra_tokens) return 0.0f;
  float th = pattn_load(a->theta.buf, a->theta.dtype, a->theta.offset + h * a->e + k % a->e);
  float pos = (float)p[k / a->e];
  volatile float ang = pos * th; /* volatile: a single rounded f32 product, never contracted or widened */
  return ang;
}

pattn_status cpu_ref_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a) {
  (void)ctx;
  const int64_t d = a->d;
  int64_t p[PATTN_MAX_DIMS] = {0};
  for (int64_t hh = 0; hh < a->h; hh++)
    for (int64_t t = 0; t < a->n; t++) {
      if (t >= a->extra_tokens) cpu_lrpe_positions(a, t, p);
      for (int64_t k = 0; k < d; k++) {
        float ang = lrpe_angle(a, hh, t, k, p);
        double cs = cos((double)ang), sn = sin((double)ang);
        if (a->cache.buf)
          pattn_store(a->cache.buf, a->cache.dtype, a->cache.offset + (hh * a->n + t) * d + k, ang);
        for (int64_t b = 0; b < a->b; b++) {
          int64_t row = (b * a->h + hh) * a->n + t;
          double x = mat_get(&a->in, row * d + k);
          mat_set(&a->out, row * 2 * d + k, x * cs);
          mat_set(&a->out, row * 2 * d + d + k, x * sn);
        }
      }
    }
  return PATTN_OK;
}

pattn_status cpu_ref_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a) {
  (void)ctx;
  const int64_t d = a->d;
  int64_t p[PATTN_MAX_DIMS] = {0};
  for (int64_t hh = 0; hh < a->h; hh++)
    for (int64_t t = 0; t < a->n; t++) {
      if (t >= a->extra_tokens) cpu_lrpe_positions(a, t, p);
      for (int64_t k = 0; k < d; k++) {
        float ang = a->cache.buf
                        ? pattn_load(a->cache.buf, a->cache.dtype, a->cache.offset + (hh * a->n + t) * d + k)
                        : lrpe_angle(a, hh, t, k, p);
        double cs = cos((double)ang), sn = sin((double)ang);
        for (int64_t b = 0; b < a->b; b++) {
          int64_t row = (b * a->h + hh) * a->n + t;
          double g = mat_get(&a->in, row * 2 * d + k) * cs + mat_get(&a->in, row * 2 * d + d + k) * sn;
          mat_set(&a->out, row * d + k, g);
        }
      }
    }
  return PATTN_OK;
}

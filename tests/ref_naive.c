/* Naive double-precision references (see ref_naive.h). Deliberately the plainest loops: they
 * are the unit tests' independent statement of SPEC.md, so they share nothing with the
 * library's CPU backend. */
#include "ref_naive.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_util.h"
#include "testing.h"

/* ---- fixture ---- */
pattn_context *g_ctx;

static int setup_mode(int reference) {
  pattn_status st = PATTN_OK;
  g_ctx = tu_context("cpu", reference, &st);
  if (!g_ctx) {
    print_error("cannot create a cpu context (reference=%d): %s: %s\n", reference,
                pattn_status_string(st), pattn_last_error(NULL));
    return -1;
  }
  /* guard bands around every tensor let the tests prove nothing outside an output changes */
  pattn_testing_set_guard_bytes(g_ctx, 256);
  return 0;
}
int ref_setup_fast(void **state) { (void)state; return setup_mode(0); }
int ref_setup_reference(void **state) { (void)state; return setup_mode(1); }
int ref_teardown(void **state) {
  (void)state;
  pattn_context_destroy(g_ctx);
  g_ctx = NULL;
  return 0;
}

int ref_run_both_modes(const char *name, const struct CMUnitTest *tests, size_t count) {
  char fast[128], ref[128];
  snprintf(fast, sizeof fast, "%s-cpu-fast", name);
  snprintf(ref, sizeof ref, "%s-cpu-reference", name);
  int fails = _cmocka_run_group_tests(fast, tests, count, ref_setup_fast, ref_teardown);
  fails += _cmocka_run_group_tests(ref, tests, count, ref_setup_reference, ref_teardown);
  return fails;
}

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  assert_non_null(p);
  return p;
}

/* ---- dense attention ---- */
void ref_head(int64_t nq, int64_t nk, int64_t dk, int64_t dv, const float *q, const float *k,
              const float *v, const float *mask, double scale, int causal, double *out,
              double *lse) {
  double *s = xcalloc((size_t)nk, sizeof(double));
  for (int64_t i = 0; i < nq; i++) {
    double m = -INFINITY;
    for (int64_t j = 0; j < nk; j++) {
      if (causal && j > i + nk - nq) { s[j] = -INFINITY; continue; }
      double dot = 0;
      for (int64_t c = 0; c < dk; c++) dot += (double)q[i * dk + c] * k[j * dk + c];
      s[j] = scale * dot + (mask ? (double)mask[i * nk + j] : 0.0);
      if (s[j] > m) m = s[j];
    }
    double *o = out + i * dv;
    for (int64_t c = 0; c < dv; c++) o[c] = 0;
    if (m == -INFINITY) { /* no visible key */
      if (lse) lse[i] = -INFINITY;
      continue;
    }
    double sum = 0;
    for (int64_t j = 0; j < nk; j++) {
      double p = s[j] == -INFINITY ? 0.0 : exp(s[j] - m);
      sum += p;
      for (int64_t c = 0; c < dv; c++) o[c] += p * v[j * dv + c];
    }
    for (int64_t c = 0; c < dv; c++) o[c] /= sum;
    if (lse) lse[i] = m + log(sum);
  }
  free(s);
}

void ref_attention(int64_t b, int64_t hq, int64_t hkv, int64_t nq, int64_t nk, int64_t dk,
                   int64_t dv, const float *q, const float *k, const float *v,
                   const float *mask, int64_t mb, int64_t mh, double scale, int causal,
                   float *out, float *lse) {
  double *o = xcalloc((size_t)(nq * dv), sizeof(double));
  double *l = xcalloc((size_t)nq, sizeof(double));
  int64_t group = hq / hkv;
  for (int64_t ib = 0; ib < b; ib++)
    for (int64_t ih = 0; ih < hq; ih++) {
      int64_t kh = ih / group;
      const float *mk = NULL;
      if (mask) mk = mask + (((mb == 1 ? 0 : ib) * mh + (mh == 1 ? 0 : ih)) * nq * nk);
      ref_head(nq, nk, dk, dv, q + (ib * hq + ih) * nq * dk, k + (ib * hkv + kh) * nk * dk,
               v + (ib * hkv + kh) * nk * dv, mk, scale, causal, o, l);
      for (int64_t i = 0; i < nq * dv; i++) out[(ib * hq + ih) * nq * dv + i] = (float)o[i];
      if (lse)
        for (int64_t i = 0; i < nq; i++) lse[(ib * hq + ih) * nq + i] = (float)l[i];
    }
  free(o);
  free(l);
}

void ref_attention_backward(int64_t b, int64_t hq, int64_t hkv, int64_t nq, int64_t nk,
                            int64_t dk, int64_t dv, const float *q, const float *k,
                            const float *v, const float *dout, double scale, int causal,
                            float *dq, float *dkk, float *dvv) {
  int64_t group = hq / hkv;
  double *o = xcalloc((size_t)(nq * dv), sizeof(double));
  double *l = xcalloc((size_t)nq, sizeof(double));
  double *p = xcalloc((size_t)(nq * nk), sizeof(double));
  double *ds = xcalloc((size_t)(nq * nk), sizeof(double));
  double *gk = xcalloc((size_t)(b * hkv * nk * dk), sizeof(double));
  double *gv = xcalloc((size_t)(b * hkv * nk * dv), sizeof(double));
  for (int64_t ib = 0; ib < b; ib++)
    for (int64_t ih = 0; ih < hq; ih++) {
      int64_t kh = ih / group;
      const float *qh = q + (ib * hq + ih) * nq * dk;
      const float *kk = k + (ib * hkv + kh) * nk * dk;
      const float *vv = v + (ib * hkv + kh) * nk * dv;
      const float *go = dout + (ib * hq + ih) * nq * dv;
      ref_head(nq, nk, dk, dv, qh, kk, vv, NULL, scale, causal, o, l);
      for (int64_t i = 0; i < nq; i++) {
        double D = 0; /* D_i = dot(dout_i, out_i) */
        for (int64_t c = 0; c < dv; c++) D += (double)go[i * dv + c] * o[i * dv + c];
        for (int64_t j = 0; j < nk; j++) {
          double pij = 0;
          if (l[i] != -INFINITY && !(causal && j > i + nk - nq)) {
            double dot = 0;
            for (int64_t c = 0; c < dk; c++) dot += (double)qh[i * dk + c] * kk[j * dk + c];
            pij = exp(scale * dot - l[i]);
          }
          double dp = 0; /* dp = dout v^T */
          for (int64_t c = 0; c < dv; c++) dp += (double)go[i * dv + c] * vv[j * dv + c];
          p[i * nk + j] = pij;
          ds[i * nk + j] = pij * (dp - D);
        }
      }
      for (int64_t i = 0; i < nq; i++) /* dq = scale * ds k */
        for (int64_t c = 0; c < dk; c++) {
          double acc = 0;
          for (int64_t j = 0; j < nk; j++) acc += ds[i * nk + j] * kk[j * dk + c];
          dq[((ib * hq + ih) * nq + i) * dk + c] = (float)(scale * acc);
        }
      for (int64_t j = 0; j < nk; j++) { /* dk = scale * ds^T q, dv = p^T dout, GQA-summed */
        for (int64_t c = 0; c < dk; c++) {
          double acc = 0;
          for (int64_t i = 0; i < nq; i++) acc += ds[i * nk + j] * qh[i * dk + c];
          gk[((ib * hkv + kh) * nk + j) * dk + c] += scale * acc;
        }
        for (int64_t c = 0; c < dv; c++) {
          double acc = 0;
          for (int64_t i = 0; i < nq; i++) acc += p[i * nk + j] * go[i * dv + c];
          gv[((ib * hkv + kh) * nk + j) * dv + c] += acc;
        }
      }
    }
  for (int64_t i = 0; i < b * hkv * nk * dk; i++) dkk[i] = (float)gk[i];
  for (int64_t i = 0; i < b * hkv * nk * dv; i++) dvv[i] = (float)gv[i];
  free(o); free(l); free(p); free(ds); free(gk); free(gv);
}

/* ---- dilated ---- */
/* Attention among positions pos[0..np) of head (ib, ih) of BHND q/k/v; results in
 * res [np][d] and lse [np]. */
static void attend_positions(int64_t h, int64_t n, int64_t d, const float *q, const float *k,
                             const float *v, int64_t ib, int64_t ih, const int64_t *pos,
                             int64_t np, int causal, double scale, double *res, double *lse) {
  float *gq = xcalloc((size_t)(np * d), sizeof(float));
  float *gk = xcalloc((size_t)(np * d), sizeof(float));
  float *gv = xcalloc((size_t)(np * d), sizeof(float));
  const int64_t base = (ib * h + ih) * n * d;
  for (int64_t t = 0; t < np; t++) {
    memcpy(gq + t * d, q + base + pos[t] * d, (size_t)d * sizeof(float));
    memcpy(gk + t * d, k + base + pos[t] * d, (size_t)d * sizeof(float));
    memcpy(gv + t * d, v + base + pos[t] * d, (size_t)d * sizeof(float));
  }
  /* positions are increasing, so "earlier-or-equal position" is index order */
  ref_head(np, np, d, d, gq, gk, gv, NULL, scale, causal, res, lse);
  free(gq); free(gk); free(gv);
}

void ref_dilated(int64_t b, int64_t h, int64_t n, int64_t d, const float *q, const float *k,
                 const float *v, int nseg, const int64_t *seg, const int64_t *rate,
                 int lse_merge, int causal, double scale, float *out) {
  const int64_t total = b * h * n * d;
  double *acc = xcalloc((size_t)total, sizeof(double));
  double *res = xcalloc((size_t)(n * d), sizeof(double));
  double *lse = xcalloc((size_t)n, sizeof(double));
  int64_t *pos = xcalloc((size_t)n, sizeof(int64_t));
  /* LSE merge keeps every branch's out_i and lse_i */
  double *bout = lse_merge ? xcalloc((size_t)(nseg * total), sizeof(double)) : NULL;
  double *blse = lse_merge ? xcalloc((size_t)(nseg * b * h * n), sizeof(double)) : NULL;
  int64_t head0 = 0;
  for (int i = 0; i < nseg; i++) {
    const int64_t s = seg[i], r = rate[i];
    int64_t hstart = 0, hcount = h;
    if (!lse_merge) { /* group i: h/G heads, one more if i < h%G, in order */
      hstart = head0;
      hcount = h / nseg + (i < h % nseg ? 1 : 0);
      head0 += hcount;
    } else {
      for (int64_t x = 0; x < b * h * n; x++) blse[i * b * h * n + x] = -INFINITY;
    }
    const int64_t blk = (h + r - 1) / r; /* LSE: ceil(h / r) heads per offset block */
    for (int64_t ib = 0; ib < b; ib++)
      for (int64_t ih = hstart; ih < hstart + hcount; ih++) {
        const int64_t o = lse_merge ? ih / blk : i % r;
        for (int64_t j = 0; j < n / s; j++) {
          int64_t np = 0;
          for (int64_t p = j * s + o; p < (j + 1) * s; p += r) pos[np++] = p;
          if (np == 0) continue;
          attend_positions(h, n, d, q, k, v, ib, ih, pos, np, causal, scale, res, lse);
          for (int64_t t = 0; t < np; t++) {
            const int64_t row = (ib * h + ih) * n + pos[t];
            for (int64_t c = 0; c < d; c++) {
              if (lse_merge) bout[i * total + row * d + c] = res[t * d + c];
              else acc[row * d + c] += res[t * d + c];
            }
            if (lse_merge) blse[i * b * h * n + row] = lse[t];
          }
        }
      }
  }
  if (!lse_merge) {
    for (int64_t x = 0; x < total; x++) out[x] = (float)(acc[x] / nseg);
  } else {
    for (int64_t row = 0; row < b * h * n; row++) {
      double m = -INFINITY;
      for (int i = 0; i < nseg; i++) m = fmax(m, blse[i * b * h * n + row]);
      for (int64_t c = 0; c < d; c++) out[row * d + c] = 0.0f;
      if (m == -INFINITY) continue; /* covered by no branch */
      double wsum = 0;
      for (int i = 0; i < nseg; i++) wsum += exp(blse[i * b * h * n + row] - m);
      for (int64_t c = 0; c < d; c++) {
        double x = 0;
        for (int i = 0; i < nseg; i++) {
          double w = exp(blse[i * b * h * n + row] - m) / wsum;
          if (w > 0) x += w * bout[i * total + row * d + c];
        }
        out[row * d + c] = (float)x;
      }
    }
  }
  free(acc); free(res); free(lse); free(pos); free(bout); free(blse);
}

/* ---- block-sparse ---- */
void ref_block_sparse(int64_t b, int64_t h, int64_t nq, int64_t nk, int64_t d, const float *q,
                      const float *k, const float *v, int block, int layout_heads,
                      const uint8_t *layout, int causal, double scale, float *out) {
  const int64_t nqb = (nq + block - 1) / block, nkb = (nk + block - 1) / block;
  float *mask = xcalloc((size_t)(layout_heads * nq * nk), sizeof(float));
  for (int64_t lh = 0; lh < layout_heads; lh++)
    for (int64_t i = 0; i < nq; i++)
      for (int64_t j = 0; j < nk; j++)
        mask[(lh * nq + i) * nk + j] =
            layout[(lh * nqb + i / block) * nkb + j / block] ? 0.0f : -INFINITY;
  ref_attention(b, h, h, nq, nk, d, d, q, k, v, mask, 1, layout_heads, scale, causal, out, NULL);
  free(mask);
}

/* ---- layouts ---- */
void ref_bhnd_to_bnhd(const float *src, float *dst, int64_t b, int64_t h, int64_t n, int64_t d) {
  for (int64_t ib = 0; ib < b; ib++)
    for (int64_t ih = 0; ih < h; ih++)
      for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < d; c++)
          dst[((ib * n + i) * h + ih) * d + c] = src[((ib * h + ih) * n + i) * d + c];
}

void ref_bnhd_to_bhnd(const float *src, float *dst, int64_t b, int64_t h, int64_t n, int64_t d) {
  for (int64_t ib = 0; ib < b; ib++)
    for (int64_t ih = 0; ih < h; ih++)
      for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < d; c++)
          dst[((ib * h + ih) * n + i) * d + c] = src[((ib * n + i) * h + ih) * d + c];
}

/* ---- checks ---- */
void ref_check_guards(const char *what, const pattn_tensor *t) {
  if (!pattn_testing_guards_intact(t)) fail_msg("%s: something wrote outside the tensor", what);
}

void ref_check_tol(const char *what, const float *got, const float *ref, size_t n,
                   double rel_l2, double max_abs) {
  for (size_t i = 0; i < n; i++) {
    if (isinf(ref[i]) && got[i] != ref[i])
      fail_msg("%s: element %zu is %g, expected %g", what, i, (double)got[i], (double)ref[i]);
    if (isfinite(ref[i]) && !isfinite(got[i]))
      fail_msg("%s: element %zu is %g where the reference is %g", what, i, (double)got[i],
               (double)ref[i]);
  }
  double e2 = tu_rel_l2(got, ref, n), ea = tu_max_abs(got, ref, n);
  if (!(e2 <= rel_l2) || !(ea <= max_abs))
    fail_msg("%s: rel-L2 %.3g (limit %.3g), max abs %.3g (limit %.3g)", what, e2, rel_l2, ea,
             max_abs);
}

void ref_check(const char *what, const float *got, const float *ref, size_t n, pattn_dtype dt) {
  switch (dt) { /* SPEC.md section 7 */
  case PATTN_F16: ref_check_tol(what, got, ref, n, 2e-3, 1e-2); break;
  case PATTN_BF16: ref_check_tol(what, got, ref, n, 1.6e-2, 6e-2); break;
  default: ref_check_tol(what, got, ref, n, 1e-5, 1e-4); break;
  }
}

float *ref_randn(uint64_t seed, size_t n, pattn_dtype dt) {
  float *x = xcalloc(n, sizeof(float));
  tu_rng r = tu_rng_seed(seed);
  tu_fill_normal(&r, x, n);
  tu_round_to(dt, x, n);
  return x;
}

pattn_tensor *ref_upload(pattn_dtype dt, pattn_layout layout, int64_t b, int64_t h, int64_t n, int64_t d,
                         const float *bhnd) {
  int64_t shape[4] = {b, h, n, d};
  if (layout == PATTN_LAYOUT_BHND) return tu_tensor(g_ctx, dt, 4, shape, bhnd);
  shape[1] = n;
  shape[2] = h;
  if (!bhnd) return tu_tensor(g_ctx, dt, 4, shape, NULL);
  float *x = malloc((size_t)(b * h * n * d) * sizeof(float));
  assert_non_null(x);
  ref_bhnd_to_bnhd(bhnd, x, b, h, n, d);
  pattn_tensor *t = tu_tensor(g_ctx, dt, 4, shape, x);
  free(x);
  return t;
}

float *ref_download(const pattn_tensor *t, pattn_layout layout, int64_t b, int64_t h, int64_t n, int64_t d) {
  float *x = tu_read(t);
  if (layout == PATTN_LAYOUT_BHND) return x;
  float *y = malloc((size_t)(b * h * n * d) * sizeof(float));
  assert_non_null(y);
  ref_bnhd_to_bhnd(x, y, b, h, n, d);
  free(x);
  return y;
}

size_t ref_mem_mark(void) {
  size_t in_use = 0, peak = 0;
  assert_int_equal(pattn_synchronize(g_ctx), PATTN_OK);
  pattn_memory_reset_peak(g_ctx);
  assert_int_equal(pattn_memory_stats(g_ctx, &in_use, &peak), PATTN_OK);
  return in_use;
}

size_t ref_mem_extra(size_t mark) {
  size_t in_use = 0, peak = 0;
  assert_int_equal(pattn_synchronize(g_ctx), PATTN_OK);
  assert_int_equal(pattn_memory_stats(g_ctx, &in_use, &peak), PATTN_OK);
  assert_int_equal(in_use, mark); /* workspace was given back */
  return peak - mark;
}

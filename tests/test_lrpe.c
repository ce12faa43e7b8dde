/* md_lrpe_cosine (SPEC.md section 6) on both CPU modes, against the spec's formula evaluated
 * in the test (angle as one f32 multiply, sin/cos in double): 1-3 grid dims, extra tokens,
 * e = next_pow2(ceil(d/m)) including d=128 m=3 (last axis never encoded), the angle cache,
 * backward with and without the cache, angles up to 1e5 rad, f32/f16/bf16. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref_naive.h"
#include "test_util.h"

typedef struct lrpe_case {
  int64_t b, h, d;
  int m;
  int64_t shape[8];
  int64_t extra;
  pattn_dtype dt;
  int theta_like_x; /* theta in x's dtype instead of f32 ("theta in any dtype") */
  double theta_max; /* theta ~ U(0, theta_max) */
  uint64_t seed;
} lrpe_case;

static int64_t next_pow2(int64_t x) {
  int64_t p = 1;
  while (p < x) p *= 2;
  return p;
}

static int64_t grid_size(const lrpe_case *c) {
  int64_t n = 1;
  for (int i = 0; i < c->m; i++) n *= c->shape[i];
  return n;
}

/* The angle of (head, row t, column k), straight from SPEC.md. */
static float angle(const lrpe_case *c, int64_t e, const float *theta, int64_t ih, int64_t t, int64_t k) {
  if (t < c->extra) return 0.0f;
  int64_t p[8], rem = t - c->extra;
  for (int i = c->m - 1; i >= 0; i--) {
    p[i] = rem % c->shape[i];
    rem /= c->shape[i];
  }
  return (float)p[k / e] * theta[ih * e + k % e]; /* one f32 multiply */
}

/* |got - ref| within one unit in the last place of dtype dt at ref. */
static void check_ulp(const char *what, const float *got, const double *ref, size_t n, pattn_dtype dt,
                      double f32_tol) {
  for (size_t i = 0; i < n; i++) {
    double tol;
    if (dt == PATTN_F32) {
      tol = f32_tol;
    } else {
      int ex;
      frexp(ref[i], &ex); /* |ref| in [2^(ex-1), 2^ex) */
      int mant = dt == PATTN_F16 ? 10 : 7, emin = dt == PATTN_F16 ? -14 : -126;
      int e2 = ex - 1 < emin ? emin : ex - 1;
      tol = ldexp(1.0, e2 - mant);
    }
    if (!(fabs((double)got[i] - ref[i]) <= tol))
      fail_msg("%s[%zu] = %.9g, expected %.9g (tolerance %.3g)", what, i, (double)got[i], ref[i], tol);
  }
}

static void run_case(const lrpe_case *c) {
  const int64_t N = grid_size(c), n = c->extra + N, d = c->d, e = next_pow2((d + c->m - 1) / c->m);
  const size_t nx = (size_t)(c->b * c->h * n * d), nout = 2 * nx;
  float *x = ref_randn(c->seed, nx, c->dt);
  float *dout = ref_randn(c->seed + 1, nout, c->dt);
  float *theta = malloc((size_t)(c->h * e) * sizeof(float));
  assert_non_null(theta);
  tu_rng r = tu_rng_seed(c->seed + 2);
  for (int64_t i = 0; i < c->h * e; i++) theta[i] = (float)(tu_uniform(&r) * c->theta_max);
  const pattn_dtype theta_dt = c->theta_like_x ? c->dt : PATTN_F32;
  tu_round_to(theta_dt, theta, (size_t)(c->h * e));

  double *out_ref = malloc(nout * sizeof(double)), *dx_ref = malloc(nx * sizeof(double));
  float *ang_ref = malloc((size_t)(c->h * n * d) * sizeof(float));
  assert_true(out_ref && dx_ref && ang_ref);
  double xmax = 0;
  for (int64_t ih = 0; ih < c->h; ih++)
    for (int64_t t = 0; t < n; t++)
      for (int64_t k = 0; k < d; k++) ang_ref[(ih * n + t) * d + k] = angle(c, e, theta, ih, t, k);
  for (int64_t ib = 0; ib < c->b; ib++)
    for (int64_t ih = 0; ih < c->h; ih++)
      for (int64_t t = 0; t < n; t++)
        for (int64_t k = 0; k < d; k++) {
          double a = ang_ref[(ih * n + t) * d + k];
          size_t row = (size_t)((ib * c->h + ih) * n + t);
          double xv = x[row * (size_t)d + (size_t)k];
          xmax = fmax(xmax, fabs(xv));
          out_ref[row * 2 * (size_t)d + (size_t)k] = xv * cos(a);
          out_ref[row * 2 * (size_t)d + (size_t)(d + k)] = xv * sin(a);
          dx_ref[row * (size_t)d + (size_t)k] = (double)dout[row * 2 * (size_t)d + (size_t)k] * cos(a) +
                                                (double)dout[row * 2 * (size_t)d + (size_t)(d + k)] * sin(a);
        }

  int64_t xs[4] = {c->b, c->h, n, d}, os[4] = {c->b, c->h, n, 2 * d}, ts[2] = {c->h, e};
  int64_t cs[3] = {c->h, n, d};
  pattn_tensor *tx = tu_tensor(g_ctx, c->dt, 4, xs, x), *tt = tu_tensor(g_ctx, theta_dt, 2, ts, theta);
  pattn_tensor *to = tu_tensor(g_ctx, c->dt, 4, os, NULL), *tc = tu_tensor(g_ctx, PATTN_F32, 3, cs, NULL);
  pattn_tensor *tgo = tu_tensor(g_ctx, c->dt, 4, os, dout), *tdx = tu_tensor(g_ctx, c->dt, 4, xs, NULL);

  /* forward without a cache, then with one: same output, cache = the angles */
  for (int with_cache = 0; with_cache < 2; with_cache++) {
    tu_poison(to);
    tu_poison(tc);
    pattn_status st = pattn_md_lrpe_cosine_forward(g_ctx, tx, tt, c->m, c->shape, c->extra, to,
                                                   with_cache ? tc : NULL);
    if (st != PATTN_OK) fail_msg("lrpe forward: %s: %s", pattn_status_string(st), pattn_last_error(g_ctx));
    ref_check_guards("out", to);
    float *o = tu_read(to);
    check_ulp("lrpe out", o, out_ref, nout, c->dt, 2e-6 * xmax);
    free(o);
    if (with_cache) {
      ref_check_guards("angle cache", tc);
      float *ac = tu_read(tc);
      for (int64_t i = 0; i < c->h * n * d; i++)
        if (ac[i] != ang_ref[i])
          fail_msg("angle cache[%lld] = %.9g, expected %.9g", (long long)i, (double)ac[i], (double)ang_ref[i]);
      free(ac);
    }
  }
  /* backward recomputing the angles, then reading the cache the forward wrote */
  double gmax = 0;
  for (size_t i = 0; i < nout; i++) gmax = fmax(gmax, fabs(dout[i]));
  for (int with_cache = 0; with_cache < 2; with_cache++) {
    tu_poison(tdx);
    pattn_status st = pattn_md_lrpe_cosine_backward(g_ctx, tgo, tt, c->m, c->shape, c->extra,
                                                    with_cache ? tc : NULL, tdx);
    if (st != PATTN_OK) fail_msg("lrpe backward: %s: %s", pattn_status_string(st), pattn_last_error(g_ctx));
    ref_check_guards("dx", tdx);
    float *g = tu_read(tdx);
    check_ulp(with_cache ? "dx (cache)" : "dx", g, dx_ref, nx, c->dt, 2e-6 * gmax);
    free(g);
  }

  pattn_tensor_destroy(tx); pattn_tensor_destroy(tt); pattn_tensor_destroy(to);
  pattn_tensor_destroy(tc); pattn_tensor_destroy(tgo); pattn_tensor_destroy(tdx);
  free(x); free(dout); free(theta); free(out_ref); free(dx_ref); free(ang_ref);
}

static void test_1d(void **state) {
  (void)state;
  run_case(&(lrpe_case){.b = 2, .h = 2, .d = 8, .m = 1, .shape = {7}, .theta_max = 1.0, .seed = 700});
  run_case(&(lrpe_case){.b = 1, .h = 3, .d = 6, .m = 1, .shape = {5}, .extra = 2, .theta_max = 1.0, .seed = 701});
}

static void test_2d(void **state) {
  (void)state;
  /* d = 10, m = 2: e = 8, columns 8, 9 take axis 1 */
  run_case(&(lrpe_case){.b = 1, .h = 2, .d = 10, .m = 2, .shape = {3, 4}, .theta_max = 1.0, .seed = 710});
  run_case(&(lrpe_case){.b = 2, .h = 1, .d = 16, .m = 2, .shape = {4, 2}, .extra = 1, .theta_max = 1.0, .seed = 711});
}

static void test_3d(void **state) {
  (void)state;
  run_case(&(lrpe_case){.b = 1, .h = 2, .d = 12, .m = 3, .shape = {2, 3, 4}, .extra = 3, .theta_max = 1.0, .seed = 720});
  /* d = 128, m = 3: e = 64, the last axis is never encoded */
  run_case(&(lrpe_case){.b = 1, .h = 2, .d = 128, .m = 3, .shape = {2, 3, 2}, .extra = 1, .theta_max = 1.0, .seed = 721});
}

static void test_large_angles(void **state) { /* positions up to 9, theta up to 1.1e4: ~1e5 rad */
  (void)state;
  run_case(&(lrpe_case){.b = 1, .h = 2, .d = 16, .m = 1, .shape = {10}, .theta_max = 1.1e4, .seed = 730});
  run_case(&(lrpe_case){.b = 1, .h = 1, .d = 8, .m = 2, .shape = {10, 10}, .extra = 2, .theta_max = 1.1e4, .seed = 731});
}

static void test_half_types(void **state) {
  (void)state;
  run_case(&(lrpe_case){.dt = PATTN_F16, .b = 1, .h = 2, .d = 12, .m = 2, .shape = {3, 5}, .extra = 2, .theta_max = 100.0, .seed = 740});
  run_case(&(lrpe_case){.dt = PATTN_BF16, .b = 1, .h = 2, .d = 12, .m = 3, .shape = {2, 2, 3}, .extra = 1, .theta_max = 1e4, .seed = 741});
  run_case(&(lrpe_case){.dt = PATTN_F16, .theta_like_x = 1, .b = 2, .h = 2, .d = 8, .m = 1, .shape = {9}, .extra = 1, .theta_max = 10.0, .seed = 742});
  run_case(&(lrpe_case){.dt = PATTN_BF16, .theta_like_x = 1, .b = 1, .h = 3, .d = 8, .m = 2, .shape = {3, 3}, .theta_max = 10.0, .seed = 743});
}

/* Hand-checked: d = 128, m = 3, e = 64; x = 1. Grid positions differing only in the last
 * axis give identical rows; the first axis drives columns 0..63, the second 64..127; extra
 * tokens give out = [x, 0]. */
static void test_d128_m3_by_hand(void **state) {
  (void)state;
  const int64_t d = 128, shape[3] = {2, 2, 3}, n = 1 + 12;
  int64_t xs[4] = {1, 1, n, d}, os[4] = {1, 1, n, 2 * d}, ts[2] = {1, 64};
  float *x = malloc((size_t)(n * d) * sizeof(float)), theta[64];
  assert_non_null(x);
  for (int64_t i = 0; i < n * d; i++) x[i] = 1.0f;
  for (int i = 0; i < 64; i++) theta[i] = 0.25f * (float)(i + 1);
  pattn_tensor *tx = tu_tensor(g_ctx, PATTN_F32, 4, xs, x), *tt = tu_tensor(g_ctx, PATTN_F32, 2, ts, theta);
  pattn_tensor *to = tu_tensor(g_ctx, PATTN_F32, 4, os, NULL);
  assert_int_equal(pattn_md_lrpe_cosine_forward(g_ctx, tx, tt, 3, shape, 1, to, NULL), PATTN_OK);
  float *o = tu_read(to);
  for (int64_t k = 0; k < d; k++) { /* extra token */
    assert_true(o[k] == 1.0f);
    assert_true(o[d + k] == 0.0f);
  }
  for (int64_t t = 1; t < n; t++) {
    int64_t c = t - 1, p2 = c % 3, p1 = (c / 3) % 2, p0 = c / 6;
    /* same row as its p2 = 0 sibling */
    assert_memory_equal(o + t * 2 * d, o + (t - p2) * 2 * d, (size_t)(2 * d) * sizeof(float));
    for (int64_t k = 0; k < d; k++) {
      int64_t p = k < 64 ? p0 : p1;
      double a = (double)((float)p * theta[k % 64]);
      assert_true(fabs(o[t * 2 * d + k] - cos(a)) <= 2e-6);
      assert_true(fabs(o[t * 2 * d + d + k] - sin(a)) <= 2e-6);
    }
  }
  /* a theta whose width is not e = 64 is rejected */
  int64_t bad[2] = {1, 43};
  pattn_tensor *tb = tu_tensor(g_ctx, PATTN_F32, 2, bad, NULL);
  assert_int_equal(pattn_md_lrpe_cosine_forward(g_ctx, tx, tb, 3, shape, 1, to, NULL), PATTN_ERR_INVALID_ARGUMENT);
  free(o);
  free(x);
  pattn_tensor_destroy(tx); pattn_tensor_destroy(tt); pattn_tensor_destroy(to); pattn_tensor_destroy(tb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_1d),           cmocka_unit_test(test_2d),
      cmocka_unit_test(test_3d),           cmocka_unit_test(test_large_angles),
      cmocka_unit_test(test_half_types),   cmocka_unit_test(test_d128_m3_by_hand),
  };
  return REF_RUN_BOTH_MODES("lrpe", tests) ? 1 : 0;
}

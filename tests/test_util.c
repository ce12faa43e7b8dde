#include "test_util.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dtype.h"

tu_rng tu_rng_seed(uint64_t seed) {
  tu_rng r = {seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull};
  return r;
}

uint64_t tu_next(tu_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double tu_uniform(tu_rng *r) { return (double)(tu_next(r) >> 11) * (1.0 / 9007199254740992.0); }

float tu_normal(tu_rng *r) {
  double u1 = tu_uniform(r), u2 = tu_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void tu_fill_normal(tu_rng *r, float *x, size_t n) {
  for (size_t i = 0; i < n; i++) x[i] = tu_normal(r);
}

int64_t tu_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) n *= shape[i];
  return n;
}

void tu_round_to(pattn_dtype dt, float *x, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (dt == PATTN_F16) x[i] = pattn_f16_to_f32(pattn_f32_to_f16(x[i]));
    else if (dt == PATTN_BF16) x[i] = pattn_bf16_to_f32(pattn_f32_to_bf16(x[i]));
  }
}

pattn_tensor *tu_tensor(pattn_context *ctx, pattn_dtype dt, int ndim, const int64_t *shape,
                        const float *host) {
  pattn_tensor *t = NULL;
  pattn_status st = pattn_tensor_create(ctx, dt, ndim, shape, &t);
  if (st != PATTN_OK) fail_msg("pattn_tensor_create: %s: %s", pattn_status_string(st), pattn_last_error(ctx));
  if (host) {
    st = pattn_tensor_write_f32(t, host, (size_t)tu_numel(ndim, shape));
    if (st != PATTN_OK) fail_msg("pattn_tensor_write_f32: %s: %s", pattn_status_string(st), pattn_last_error(ctx));
  }
  return t;
}

void tu_poison(pattn_tensor *t) {
  size_t n = pattn_tensor_bytes(t) / pattn_dtype_size(pattn_tensor_dtype(t));
  float *nan = malloc(n * sizeof(float));
  assert_non_null(nan);
  for (size_t i = 0; i < n; i++) nan[i] = NAN;
  assert_int_equal(pattn_tensor_write_f32(t, nan, n), PATTN_OK);
  free(nan);
}

float *tu_read(const pattn_tensor *t) {
  size_t n = pattn_tensor_bytes(t) / pattn_dtype_size(pattn_tensor_dtype(t));
  float *x = malloc((n ? n : 1) * sizeof(float));
  assert_non_null(x);
  assert_int_equal(pattn_tensor_read_f32(t, x, n), PATTN_OK);
  return x;
}

double tu_rel_l2(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; i++) {
    if (isfinite(b[i]) && !isfinite(a[i])) return INFINITY;
    if (!isfinite(b[i])) continue;
    double e = (double)a[i] - (double)b[i];
    num += e * e;
    den += (double)b[i] * b[i];
  }
  if (den == 0) return sqrt(num);
  return sqrt(num / den);
}

double tu_max_abs(const float *a, const float *b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) {
    if (isfinite(b[i]) && !isfinite(a[i])) return INFINITY;
    if (!isfinite(b[i])) continue;
    double e = fabs((double)a[i] - (double)b[i]);
    if (e > m) m = e;
  }
  return m;
}

int tu_count_nonfinite(const float *a, const float *b, size_t n) {
  int c = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(b[i]) && !isfinite(a[i])) c++;
  return c;
}

pattn_context *tu_context(const char *backend, int cpu_reference, pattn_status *st) {
  pattn_options o;
  pattn_options_default(&o);
  o.backend = backend;
  o.cpu_reference = cpu_reference;
  pattn_context *ctx = NULL;
  pattn_status s = pattn_context_create(&ctx, &o);
  if (st) *st = s;
  return s == PATTN_OK ? ctx : NULL;
}

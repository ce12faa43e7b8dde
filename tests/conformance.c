/* Cross-backend conformance suite (DESIGN.md "Conformance suite", SPEC.md section 7).
 *
 * Runs every case of the table (conformance_cases.h) on the backend named by $PATTN_BACKEND
 * (cpu: the fast CPU mode) and on the CPU reference (f64, the oracle) with the same inputs,
 * rounded to the case's dtype, and compares:
 *  - outputs within SPEC.md section 7 by output dtype; NaN/Inf where the reference is finite
 *    fails, and -inf in lse must match exactly;
 *  - every output element written (outputs are poisoned with NaN first);
 *  - inputs bit-identical after the run, guard bands around every tensor intact.
 * A backend that is not here exits 77 (skip) unless $PATTN_REQUIRE_BACKENDS names it.
 * PATTN_ERR_UNSUPPORTED from the backend under test is a failure, not a skip.
 *
 * Debugging: PATTN_CONF_CASE=<index> runs one case, PATTN_CONF_FILTER=a,b runs the cases
 * whose description contains every comma-separated word, PATTN_CONF_VERBOSE=1 prints every
 * case with its time. A word starting with '!' excludes the cases that contain it. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "conformance_cases.h"
#include "dtype.h"
#include "pattn/pattn.h"
#include "test_util.h"

#include "testing.h" /* guard bands around tensors (test hook of the static library) */

#define GUARD_BYTES 256

enum { TEST = 0, REF = 1, SIDES = 2 };
static pattn_context *g_ctx[SIDES];
static const char    *g_backend;
static conf_case     *g_cases;
static int            g_ncases;
static int            g_passed, g_failed;
static int            g_verbose;
static int            g_only_case = -1;
static const char    *g_filter;

/* ------------------------------------------------------------------------------------ */
/* One case in flight: tensor pairs (one per context) and the reasons it failed.        */

typedef enum tol_kind {
  TOL_DTYPE, /* SPEC.md section 7 table, by the output's dtype (TF32 when opted in) */
  TOL_LSE,   /* f32 lse: f32 (or TF32) tolerance, -inf must match the reference */
  TOL_LRPE,  /* elementwise: f32 2e-6*max|in|, f16/bf16 1 ulp of the output */
  TOL_EXACT  /* bit-identical (the LRPE angle cache: one f32 multiply) */
} tol_kind;

typedef struct pair {
  const char   *name;
  pattn_tensor *t[SIDES];
  pattn_dtype   dt;
  size_t        n;      /* elements */
  int           output;
  tol_kind      tol;
  float         in_max; /* TOL_LRPE: max |input| of the elementwise op */
  void         *raw;    /* inputs: the exact bytes written */
} pair;

#define MAX_PAIRS 16
typedef struct run {
  const conf_case *c;
  tu_rng           rng;
  pair             p[MAX_PAIRS];
  int              np;
  int              failed;
  char             why[2048];
} run;

static void failf(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(run *r, const char *fmt, ...) {
  size_t len = strlen(r->why);
  if (len && len + 3 < sizeof r->why) {
    strcat(r->why, "; ");
    len += 2;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->why + len, sizeof r->why - len, fmt, ap);
  va_end(ap);
  r->failed = 1;
}

static const char *side_name(int side) { return side == TEST ? g_backend : "reference"; }

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "conformance: out of host memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

/* The NaN bit pattern of each dtype: what poisoned outputs hold. */
static void fill_nan(void *raw, pattn_dtype dt, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (dt == PATTN_F32) ((uint32_t *)raw)[i] = 0x7fc00000u;
    else if (dt == PATTN_F16) ((uint16_t *)raw)[i] = 0x7e00u;
    else ((uint16_t *)raw)[i] = 0x7fc0u;
  }
}

static pair *new_pair(run *r, const char *name, pattn_dtype dt, int ndim, const int64_t *shape) {
  if (r->failed) return NULL;
  if (r->np == MAX_PAIRS) {
    failf(r, "suite bug: too many tensors");
    return NULL;
  }
  pair *p = &r->p[r->np++];
  memset(p, 0, sizeof *p);
  p->name = name;
  p->dt = dt;
  p->n = (size_t)tu_numel(ndim, shape);
  for (int s = 0; s < SIDES; s++) {
    pattn_status st = pattn_tensor_create(g_ctx[s], dt, ndim, shape, &p->t[s]);
    if (st != PATTN_OK) {
      failf(r, "%s: tensor_create(%s): %s: %s", side_name(s), name, pattn_status_string(st),
            pattn_last_error(g_ctx[s]));
      return NULL;
    }
  }
  return p;
}

/* An input holding `values` rounded to dt (values is updated to the rounded numbers). */
static pair *add_input(run *r, const char *name, pattn_dtype dt, int ndim, const int64_t *shape,
                       float *values) {
  pair *p = new_pair(r, name, dt, ndim, shape);
  if (!p) return NULL;
  size_t es = pattn_dtype_size(dt);
  p->raw = xmalloc(p->n * es);
  for (size_t i = 0; i < p->n; i++) pattn_store(p->raw, dt, (int64_t)i, values[i]);
  for (size_t i = 0; i < p->n; i++) values[i] = pattn_load(p->raw, dt, (int64_t)i);
  for (int s = 0; s < SIDES; s++) {
    pattn_status st = pattn_tensor_write(p->t[s], p->raw, p->n * es);
    if (st != PATTN_OK) {
      failf(r, "%s: tensor_write(%s): %s: %s", side_name(s), name, pattn_status_string(st),
            pattn_last_error(g_ctx[s]));
      return NULL;
    }
  }
  return p;
}

/* A unit-normal (times scale) input; the host copy is returned through *host if asked. */
static pair *add_random(run *r, const char *name, pattn_dtype dt, int ndim, const int64_t *shape,
                        float scale, float **host) {
  size_t n = (size_t)tu_numel(ndim, shape);
  float *x = xmalloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = scale * tu_normal(&r->rng);
  pair *p = add_input(r, name, dt, ndim, shape, x);
  if (host) *host = x;
  else free(x);
  return p;
}

static pair *add_output(run *r, const char *name, pattn_dtype dt, int ndim, const int64_t *shape,
                        tol_kind tol) {
  pair *p = new_pair(r, name, dt, ndim, shape);
  if (!p) return NULL;
  p->output = 1;
  p->tol = tol;
  size_t bytes = p->n * pattn_dtype_size(dt);
  void *nan = xmalloc(bytes);
  fill_nan(nan, dt, p->n);
  for (int s = 0; s < SIDES; s++) {
    pattn_status st = pattn_tensor_write(p->t[s], nan, bytes);
    if (st != PATTN_OK) {
      failf(r, "%s: poisoning %s: %s: %s", side_name(s), name, pattn_status_string(st),
            pattn_last_error(g_ctx[s]));
      free(nan);
      return NULL;
    }
  }
  free(nan);
  return p;
}

static void run_free(run *r) {
  for (int i = 0; i < r->np; i++) {
    for (int s = 0; s < SIDES; s++) pattn_tensor_destroy(r->p[i].t[s]);
    free(r->p[i].raw);
  }
  r->np = 0;
}

/* Records a failed call; returns 1 if st is not OK. */
static int call_failed(run *r, int side, const char *what, pattn_status st) {
  if (st == PATTN_OK) return 0;
  failf(r, "%s: %s returned %s: %s", side_name(side), what, pattn_status_string(st),
        pattn_last_error(g_ctx[side]));
  return 1;
}

static float *read_f32(run *r, int side, const pair *p) {
  float *x = xmalloc(p->n * sizeof *x);
  pattn_status st = pattn_tensor_read_f32(p->t[side], x, p->n);
  if (call_failed(r, side, "tensor_read_f32", st)) {
    free(x);
    return NULL;
  }
  return x;
}

/* ------------------------------------------------------------------------------------ */
/* Comparison (SPEC.md section 7).                                                       */

typedef struct tol { double rel_l2, max_abs; } tol;

static tol dtype_tol(pattn_dtype dt, int tf32) {
  if (dt == PATTN_F16) return (tol){2e-3, 1e-2};
  if (dt == PATTN_BF16) return (tol){1.6e-2, 6e-2};
  return tf32 ? (tol){2e-3, 2e-2} : (tol){1e-5, 1e-4};
}

/* One unit in the last place of dtype dt at magnitude |x| (x a value of that dtype). */
static double ulp_of(pattn_dtype dt, float x) {
  int mant = dt == PATTN_F16 ? 10 : dt == PATTN_BF16 ? 7 : 23;
  double min_normal = dt == PATTN_F16 ? 6.103515625e-05 : 1.1754943508222875e-38;
  double a = fabs((double)x);
  if (a < min_normal) a = min_normal; /* subnormals: the spacing of the smallest normals */
  int e;
  frexp(a, &e); /* a = f * 2^e, f in [0.5, 1) */
  return ldexp(1.0, e - 1 - mant);
}

static void compare_pair(run *r, const pair *p, const float *o, const float *ref) {
  const conf_case *c = r->c;
  size_t n = p->n;
  /* The reference must write every element and give finite values (lse may be -inf). */
  for (size_t i = 0; i < n; i++) {
    if (isfinite(ref[i])) continue;
    if (p->tol == TOL_LSE && ref[i] == -INFINITY) {
      if (o[i] != -INFINITY) {
        failf(r, "%s[%zu]=%g where the reference lse is -inf (row sees no key)", p->name, i, (double)o[i]);
        return;
      }
      continue;
    }
    failf(r, "reference gave %s[%zu]=%g (unwritten or non-finite: a reference bug)", p->name, i, (double)ref[i]);
    return;
  }
  int bad = tu_count_nonfinite(o, ref, n);
  if (bad) {
    size_t i = 0;
    while (i < n && !(isfinite(ref[i]) && !isfinite(o[i]))) i++;
    failf(r, "%s: %d elements NaN/Inf/unwritten where the reference is finite (first [%zu]=%g, ref %g)",
          p->name, bad, i, (double)o[i], (double)ref[i]);
    return;
  }
  if (p->tol == TOL_EXACT) {
    for (size_t i = 0; i < n; i++)
      if (memcmp(&o[i], &ref[i], sizeof(float)) != 0) {
        failf(r, "%s[%zu]=%.9g, reference %.9g: must be bit-identical", p->name, i, (double)o[i], (double)ref[i]);
        return;
      }
    return;
  }
  if (p->tol == TOL_LRPE) {
    /* f32: 2e-6 * max|in|. f16/bf16: 1 ulp of the output; an f32 implementation rounds its
     * f32 result, which may already be off by the f32 bound near zero, so that bound is
     * the floor. */
    double f32_bound = 2e-6 * p->in_max;
    for (size_t i = 0; i < n; i++) {
      double err = fabs((double)o[i] - (double)ref[i]);
      double lim = p->dt == PATTN_F32 ? f32_bound : fmax(ulp_of(p->dt, ref[i]), f32_bound);
      if (err > lim) {
        failf(r, "%s[%zu]=%.9g, reference %.9g: |err| %.3g > %.3g (elementwise)", p->name, i,
              (double)o[i], (double)ref[i], err, lim);
        return;
      }
    }
    return;
  }
  tol t = dtype_tol(p->dt, c->precision == PATTN_PRECISION_TF32);
  double rel = tu_rel_l2(o, ref, n), mx = tu_max_abs(o, ref, n);
  /* The max-abs bound assumes O(1) outputs (unit-normal inputs). Outputs that are larger as a
   * whole (lse, gradients summed over many rows) carry rounding of their own magnitude, so
   * the bound scales with the reference's RMS when that exceeds 1 (never below the table). */
  double ss = 0;
  size_t nf = 0;
  for (size_t i = 0; i < n; i++)
    if (isfinite(ref[i])) ss += (double)ref[i] * ref[i], nf++;
  double mx_lim = t.max_abs * fmax(1.0, nf ? sqrt(ss / (double)nf) : 0.0);
  if (rel > t.rel_l2 || mx > mx_lim) {
    size_t worst = 0;
    double we = -1;
    for (size_t i = 0; i < n; i++) {
      double e = isfinite(ref[i]) ? fabs((double)o[i] - (double)ref[i]) : 0;
      if (e > we) { we = e; worst = i; }
    }
    failf(r, "%s: rel-L2 %.3g (limit %.3g), max abs %.3g (limit %.3g) at [%zu]: %.7g vs reference %.7g",
          p->name, rel, t.rel_l2, mx, mx_lim, worst, (double)o[worst], (double)ref[worst]);
  }
}

/* After both sides ran: guards, inputs untouched, outputs compared. */
static void check_run(run *r) {
  for (int i = 0; i < r->np; i++) {
    pair *p = &r->p[i];
    for (int s = 0; s < SIDES; s++)
      if (!pattn_testing_guards_intact(p->t[s]))
        failf(r, "%s: guard band around %s was overwritten", side_name(s), p->name);
    if (!p->output) {
      size_t bytes = p->n * pattn_dtype_size(p->dt);
      void *now = xmalloc(bytes);
      for (int s = 0; s < SIDES; s++) {
        pattn_status st = pattn_tensor_read(p->t[s], now, bytes);
        if (call_failed(r, s, "tensor_read", st)) break;
        if (memcmp(now, p->raw, bytes) != 0) failf(r, "%s: input %s changed during the run", side_name(s), p->name);
      }
      free(now);
      continue;
    }
    float *o = read_f32(r, TEST, p), *ref = read_f32(r, REF, p);
    if (o && ref) compare_pair(r, p, o, ref);
    free(o);
    free(ref);
  }
}

/* ------------------------------------------------------------------------------------ */
/* The ops. Each builds its tensors, runs on both sides and leaves the checks to         */
/* check_run. Attention-shaped tensors follow the case's layout.                        */

static const int64_t *shape4(const conf_case *c, int64_t h, int64_t n, int64_t d, int64_t *s) {
  s[0] = c->b;
  s[1] = c->layout == PATTN_LAYOUT_BNHD ? n : h;
  s[2] = c->layout == PATTN_LAYOUT_BNHD ? h : n;
  s[3] = d;
  return s;
}

static const pattn_tensor *T(const pair *p, int side) { return p ? p->t[side] : NULL; }
static pattn_tensor *W(pair *p, int side) { return p ? p->t[side] : NULL; }

static pattn_attention_desc attention_desc(const conf_case *c) {
  pattn_attention_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.layout = c->layout;
  d.scale = c->scale;
  d.causal = c->causal;
  d.algo = c->algo;
  d.precision = c->precision;
  return d;
}

/* f32 additive mask [b|1, h|1, nq, nk] with normal values, some -inf, and for MASK_BH one
 * fully masked row per (batch, head) (such rows give out = 0, lse = -inf). */
static pair *add_mask(run *r) {
  const conf_case *c = r->c;
  int64_t s[4] = {(c->mask == MASK_B1 || c->mask == MASK_BH) ? c->b : 1,
                  (c->mask == MASK_1H || c->mask == MASK_BH) ? c->hq : 1, c->nq, c->nk};
  size_t n = (size_t)tu_numel(4, s);
  float *m = xmalloc(n * sizeof *m);
  for (size_t i = 0; i < n; i++) m[i] = tu_uniform(&r->rng) < 0.1 ? -INFINITY : tu_normal(&r->rng);
  if (c->mask == MASK_BH)
    for (int64_t bh = 0; bh < s[0] * s[1]; bh++) {
      int64_t row = (bh * 7) % c->nq;
      for (int64_t j = 0; j < c->nk; j++) m[(bh * c->nq + row) * c->nk + j] = -INFINITY;
    }
  pair *p = add_input(r, "mask", PATTN_F32, 4, s, m);
  free(m);
  return p;
}

/* add_random with c->spread: row i of each head also times 2^(s ((i / 37) % 7) - 30), s = 10 for
 * v and 5 for q and k (at most 1, so that the scores stay well conditioned). */
static pair *add_spread(run *r, const char *name, const int64_t *shape, float scale, int s) {
  if (!r->c->spread) return add_random(r, name, r->c->dtype, 4, shape, scale, NULL);
  const int bnhd = r->c->layout == PATTN_LAYOUT_BNHD;
  const size_t n = (size_t)tu_numel(4, shape), d = (size_t)shape[3], h = bnhd ? (size_t)shape[2] : 1;
  const size_t rows = (size_t)(bnhd ? shape[1] : shape[2]);
  float *x = xmalloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = ldexpf(scale * tu_normal(&r->rng), s * (int)((i / d / h % rows / 37) % 7) - 30);
  pair *p = add_input(r, name, r->c->dtype, 4, shape, x);
  free(x);
  return p;
}

static void op_attention(run *r) {
  const conf_case *c = r->c;
  int64_t s[4], ls[3] = {c->b, c->hq, c->nq};
  const float *amp = c->amp[0] > 0 ? c->amp : (const float[3]){1, 1, 1};
  pair *q = add_spread(r, "q", shape4(c, c->hq, c->nq, c->dk, s), amp[0], 5);
  pair *k = add_spread(r, "k", shape4(c, c->hkv, c->nk, c->dk, s), amp[1], 5);
  pair *v = add_spread(r, "v", shape4(c, c->hkv, c->nk, c->dv, s), amp[2], 10);
  pair *mask = c->mask ? add_mask(r) : NULL;
  pair *out = add_output(r, "out", c->dtype, 4, shape4(c, c->hq, c->nq, c->dv, s), TOL_DTYPE);
  pair *lse = c->lse ? add_output(r, "lse", PATTN_F32, 3, ls, TOL_LSE) : NULL;
  if (r->failed) return;
  pattn_attention_desc d = attention_desc(c);
  for (int side = 0; side < SIDES; side++)
    if (call_failed(r, side, "pattn_attention",
                    pattn_attention(g_ctx[side], &d, T(q, side), T(k, side), T(v, side), T(mask, side),
                                    W(out, side), W(lse, side))))
      return;
  check_run(r);
}

/* Backward takes out and lse from a reference forward, so both sides see the same. */
static void op_attention_backward(run *r) {
  const conf_case *c = r->c;
  int64_t s[4], ls[3] = {c->b, c->hq, c->nq};
  pair *q = add_random(r, "q", c->dtype, 4, shape4(c, c->hq, c->nq, c->dk, s), 1, NULL);
  pair *k = add_random(r, "k", c->dtype, 4, shape4(c, c->hkv, c->nk, c->dk, s), 1, NULL);
  pair *v = add_random(r, "v", c->dtype, 4, shape4(c, c->hkv, c->nk, c->dv, s), 1, NULL);
  pair *dout = add_random(r, "dout", c->dtype, 4, shape4(c, c->hq, c->nq, c->dv, s), 1, NULL);
  if (r->failed) return;
  pattn_attention_desc d = attention_desc(c);
  d.algo = PATTN_ALGO_NAIVE;
  /* forward on the reference */
  pattn_tensor *fo = NULL, *fl = NULL;
  float *ho = NULL, *hl = NULL;
  pattn_status st = pattn_tensor_create(g_ctx[REF], c->dtype, 4, shape4(c, c->hq, c->nq, c->dv, s), &fo);
  if (st == PATTN_OK) st = pattn_tensor_create(g_ctx[REF], PATTN_F32, 3, ls, &fl);
  if (st == PATTN_OK)
    st = pattn_attention(g_ctx[REF], &d, T(q, REF), T(k, REF), T(v, REF), NULL, fo, fl);
  if (!call_failed(r, REF, "pattn_attention (forward for backward)", st)) {
    ho = xmalloc((size_t)tu_numel(4, s) * sizeof *ho);
    hl = xmalloc((size_t)tu_numel(3, ls) * sizeof *hl);
    st = pattn_tensor_read_f32(fo, ho, (size_t)tu_numel(4, s));
    if (st == PATTN_OK) st = pattn_tensor_read_f32(fl, hl, (size_t)tu_numel(3, ls));
    call_failed(r, REF, "tensor_read_f32", st);
  }
  pattn_tensor_destroy(fo);
  pattn_tensor_destroy(fl);
  pair *out = NULL, *lse = NULL;
  if (!r->failed) {
    out = add_input(r, "out", c->dtype, 4, shape4(c, c->hq, c->nq, c->dv, s), ho);
    lse = add_input(r, "lse", PATTN_F32, 3, ls, hl);
  }
  free(ho);
  free(hl);
  d = attention_desc(c);
  pair *dq = add_output(r, "dq", c->dtype, 4, shape4(c, c->hq, c->nq, c->dk, s), TOL_DTYPE);
  pair *dk = add_output(r, "dk", c->dtype, 4, shape4(c, c->hkv, c->nk, c->dk, s), TOL_DTYPE);
  pair *dv = add_output(r, "dv", c->dtype, 4, shape4(c, c->hkv, c->nk, c->dv, s), TOL_DTYPE);
  if (r->failed) return;
  for (int side = 0; side < SIDES; side++)
    if (call_failed(r, side, "pattn_attention_backward",
                    pattn_attention_backward(g_ctx[side], &d, T(q, side), T(k, side), T(v, side),
                                             T(out, side), T(lse, side), T(dout, side), W(dq, side),
                                             W(dk, side), W(dv, side))))
      return;
  check_run(r);
}

static pattn_dilated_desc dilated_desc(const conf_case *c, pattn_layout layout) {
  pattn_dilated_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.layout = layout;
  d.scale = c->scale;
  d.causal = c->causal;
  d.num_segments = c->num_segments;
  d.segment_lengths = c->segs;
  d.dilation_rates = c->rates;
  d.merge = c->merge;
  return d;
}

static void op_dilated(run *r) {
  const conf_case *c = r->c;
  int64_t s[4];
  shape4(c, c->hq, c->nq, c->dk, s);
  pair *q = add_random(r, "q", c->dtype, 4, s, 1, NULL);
  pair *k = add_random(r, "k", c->dtype, 4, s, 1, NULL);
  pair *v = add_random(r, "v", c->dtype, 4, s, 1, NULL);
  pair *out = add_output(r, "out", c->dtype, 4, s, TOL_DTYPE);
  if (r->failed) return;
  pattn_dilated_desc d = dilated_desc(c, c->layout);
  for (int side = 0; side < SIDES; side++)
    if (call_failed(r, side, "pattn_dilated_attention",
                    pattn_dilated_attention(g_ctx[side], &d, T(q, side), T(k, side), T(v, side), W(out, side))))
      return;
  check_run(r);
}

static void op_ring(run *r) {
  const conf_case *c = r->c;
  int64_t s[4], ls[3] = {c->b, c->hq, c->nq};
  pair *q = add_random(r, "q", c->dtype, 4, shape4(c, c->hq, c->nq, c->dk, s), 1, NULL);
  pair *k = add_random(r, "k", c->dtype, 4, shape4(c, c->hkv, c->nk, c->dk, s), 1, NULL);
  pair *v = add_random(r, "v", c->dtype, 4, shape4(c, c->hkv, c->nk, c->dv, s), 1, NULL);
  pair *out = add_output(r, "out", c->dtype, 4, shape4(c, c->hq, c->nq, c->dv, s), TOL_DTYPE);
  pair *lse = c->lse ? add_output(r, "lse", PATTN_F32, 3, ls, TOL_LSE) : NULL;
  if (r->failed) return;
  pattn_ring_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.layout = c->layout;
  d.scale = c->scale;
  d.causal = c->causal;
  d.ring_size = c->ring_size;
  for (int side = 0; side < SIDES; side++)
    if (call_failed(r, side, "pattn_ring_attention",
                    pattn_ring_attention(g_ctx[side], &d, NULL, T(q, side), T(k, side), T(v, side),
                                         W(out, side), W(lse, side))))
      return;
  check_run(r);
}

/* The case's block layout [layout_heads][nqb][nkb] (malloc'd). */
static uint8_t *build_block_layout(const conf_case *c, int64_t h, int64_t nq, int64_t nk, int *layout_heads) {
  const conf_bs_layout *l = &c->bs;
  int nqb = (int)((nq + c->block_size - 1) / c->block_size), nkb = (int)((nk + c->block_size - 1) / c->block_size);
  int lh = l->per_head ? (int)h : 1;
  size_t per = (size_t)nqb * (size_t)nkb;
  uint8_t *lay = calloc((size_t)lh * per, 1);
  if (!lay) return NULL;
  for (int ih = 0; ih < lh; ih++) {
    uint8_t *dst = lay + (size_t)ih * per;
    if (l->empty_head && ih == 0) continue;
    if (l->window >= 0) pattn_block_layout_local(dst, nqb, nkb, l->window + (l->per_head ? ih % 2 : 0));
    if (l->nrates) pattn_block_layout_dilated(dst, nqb, nkb, l->nrates, l->rates);
    if (l->global_blocks) pattn_block_layout_global(dst, nqb, nkb, l->global_blocks);
    if (l->random_p > 0) pattn_block_layout_random(dst, nqb, nkb, l->random_p, conf_case_seed(c->index) + (uint64_t)ih);
    if (l->causal_layout) pattn_block_layout_causal(dst, nqb, nkb);
  }
  *layout_heads = lh;
  return lay;
}

static pattn_block_sparse_desc block_sparse_desc(const conf_case *c, pattn_layout layout, int lh, const uint8_t *lay) {
  pattn_block_sparse_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.layout = layout;
  d.scale = c->scale;
  d.causal = c->causal;
  d.block_size = c->block_size;
  d.layout_heads = lh;
  d.block_layout = lay;
  return d;
}

static void op_block_sparse(run *r) {
  const conf_case *c = r->c;
  int64_t s[4];
  pair *q = add_random(r, "q", c->dtype, 4, shape4(c, c->hq, c->nq, c->dk, s), 1, NULL);
  pair *k = add_random(r, "k", c->dtype, 4, shape4(c, c->hq, c->nk, c->dk, s), 1, NULL);
  pair *v = add_random(r, "v", c->dtype, 4, shape4(c, c->hq, c->nk, c->dv, s), 1, NULL);
  pair *out = add_output(r, "out", c->dtype, 4, shape4(c, c->hq, c->nq, c->dv, s), TOL_DTYPE);
  if (r->failed) return;
  int lh = 1;
  uint8_t *lay = build_block_layout(c, c->hq, c->nq, c->nk, &lh);
  if (!lay) {
    failf(r, "out of host memory");
    return;
  }
  pattn_block_sparse_desc d = block_sparse_desc(c, c->layout, lh, lay);
  for (int side = 0; side < SIDES; side++)
    if (call_failed(r, side, "pattn_block_sparse_attention",
                    pattn_block_sparse_attention(g_ctx[side], &d, T(q, side), T(k, side), T(v, side), W(out, side))))
      break;
  free(lay);
  if (!r->failed) check_run(r);
}

/* Sets every weight the MHA has from the case's RNG (the same numbers on both sides). */
static int set_mha_weights(run *r, pattn_mha *mha[SIDES]) {
  const conf_case *c = r->c;
  const int64_t E = c->embed;
  static const char *proj[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
  float *buf = xmalloc((size_t)(E * E) * sizeof *buf);
  char name[64];
  int ok = 1;
  for (int i = 0; i < 4 && ok; i++) {
    for (int64_t j = 0; j < E * E; j++) buf[j] = tu_normal(&r->rng) / sqrtf((float)E);
    snprintf(name, sizeof name, "%s.weight", proj[i]);
    for (int s = 0; s < SIDES && ok; s++)
      ok = !call_failed(r, s, name, pattn_mha_set_weight(mha[s], name, buf, (size_t)(E * E)));
    if (c->bias && ok) {
      for (int64_t j = 0; j < E; j++) buf[j] = 0.1f * tu_normal(&r->rng);
      snprintf(name, sizeof name, "%s.bias", proj[i]);
      for (int s = 0; s < SIDES && ok; s++)
        ok = !call_failed(r, s, name, pattn_mha_set_weight(mha[s], name, buf, (size_t)E));
    }
  }
  const char *norms[3];
  int nn = 0;
  if (c->qk_norm) norms[nn++] = "q_norm", norms[nn++] = "k_norm";
  if (c->sub_ln) norms[nn++] = "sub_ln";
  for (int i = 0; i < nn && ok; i++)
    for (int wb = 0; wb < 2 && ok; wb++) {
      for (int64_t j = 0; j < E; j++) buf[j] = (wb ? 0.0f : 1.0f) + 0.1f * tu_normal(&r->rng);
      snprintf(name, sizeof name, "%s.%s", norms[i], wb ? "bias" : "weight");
      for (int s = 0; s < SIDES && ok; s++)
        ok = !call_failed(r, s, name, pattn_mha_set_weight(mha[s], name, buf, (size_t)E));
    }
  free(buf);
  return ok;
}

static void op_mha(run *r) {
  const conf_case *c = r->c;
  int64_t sq[3] = {c->b, c->nq, c->embed}, skv[3] = {c->b, c->nk, c->embed};
  pair *xq = add_random(r, "x_q", c->dtype, 3, sq, 1, NULL);
  pair *xkv = c->self_kv ? xq : add_random(r, "x_kv", c->dtype, 3, skv, 1, NULL);
  pair *y = add_output(r, "y", c->dtype, 3, sq, TOL_DTYPE);
  if (r->failed) return;

  /* the core's descriptor; the core runs on the MHA's own split heads */
  pattn_attention_desc ad = attention_desc(c);
  ad.algo = PATTN_ALGO_AUTO;
  pattn_dilated_desc dd = dilated_desc(c, PATTN_LAYOUT_BHND);
  pattn_ring_desc rd;
  memset(&rd, 0, sizeof rd);
  rd.struct_size = sizeof rd;
  rd.causal = c->causal;
  rd.ring_size = c->ring_size;
  int lh = 1;
  uint8_t *lay = NULL;
  pattn_block_sparse_desc bd;
  memset(&bd, 0, sizeof bd);
  if (c->core == PATTN_MHA_BLOCK_SPARSE) {
    lay = build_block_layout(c, c->hq, c->nq, c->nk, &lh);
    if (!lay) {
      failf(r, "out of host memory");
      return;
    }
    bd = block_sparse_desc(c, PATTN_LAYOUT_BHND, lh, lay);
  }
  pattn_mha_desc md;
  memset(&md, 0, sizeof md);
  md.struct_size = sizeof md;
  md.embed_dim = c->embed;
  md.num_heads = (int)c->hq;
  md.dtype = c->dtype;
  md.bias = c->bias;
  md.qk_norm = c->qk_norm;
  md.sub_ln = c->sub_ln;
  md.core = c->core;
  md.core_desc = c->core == PATTN_MHA_DENSE     ? (const void *)&ad
                 : c->core == PATTN_MHA_DILATED ? (const void *)&dd
                 : c->core == PATTN_MHA_RING    ? (const void *)&rd
                                                : (const void *)&bd;
  pattn_mha *mha[SIDES] = {NULL, NULL};
  int ok = 1;
  for (int s = 0; s < SIDES && ok; s++) ok = !call_failed(r, s, "pattn_mha_create", pattn_mha_create(g_ctx[s], &md, &mha[s]));
  if (ok && c->xavier)
    for (int s = 0; s < SIDES && ok; s++)
      ok = !call_failed(r, s, "pattn_mha_init_xavier", pattn_mha_init_xavier(mha[s], conf_case_seed(c->index), 0.7f));
  if (ok && !c->xavier) ok = set_mha_weights(r, mha);
  for (int s = 0; s < SIDES && ok; s++)
    ok = !call_failed(r, s, "pattn_mha_forward", pattn_mha_forward(mha[s], T(xq, s), T(xkv, s), W(y, s)));
  if (ok) check_run(r);
  for (int s = 0; s < SIDES; s++) pattn_mha_destroy(mha[s]);
  free(lay);
}

static int64_t lrpe_e(const conf_case *c) {
  int64_t per = (c->dk + c->ndims - 1) / c->ndims, e = 1;
  while (e < per) e *= 2;
  return e;
}

/* theta [h, e] ~ U[0, theta_max), in the case's dtype (both sides see the same). */
static pair *add_theta(run *r) {
  const conf_case *c = r->c;
  int64_t ts[2] = {c->hq, lrpe_e(c)};
  float *t = xmalloc((size_t)(ts[0] * ts[1]) * sizeof *t);
  for (int64_t i = 0; i < ts[0] * ts[1]; i++) t[i] = (float)(tu_uniform(&r->rng) * c->theta_max);
  pair *p = add_input(r, "theta", c->dtype, 2, ts, t);
  free(t);
  return p;
}

static float max_abs_of(const float *x, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
  return m;
}

static void op_lrpe_forward(run *r) {
  const conf_case *c = r->c;
  int64_t n = c->nq, xs[4] = {c->b, c->hq, n, c->dk}, os[4] = {c->b, c->hq, n, 2 * c->dk},
          cs[3] = {c->hq, n, c->dk};
  float *hx = NULL;
  pair *x = add_random(r, "x", c->dtype, 4, xs, 1, &hx);
  pair *theta = add_theta(r);
  pair *out = add_output(r, "out", c->dtype, 4, os, TOL_LRPE);
  pair *cache = c->cache ? add_output(r, "angle_cache", PATTN_F32, 3, cs, TOL_EXACT) : NULL;
  if (out && hx) out->in_max = max_abs_of(hx, (size_t)tu_numel(4, xs));
  free(hx);
  if (r->failed) return;
  for (int side = 0; side < SIDES; side++)
    if (call_failed(r, side, "pattn_md_lrpe_cosine_forward",
                    pattn_md_lrpe_cosine_forward(g_ctx[side], T(x, side), T(theta, side), c->ndims, c->shape,
                                                 c->extra, W(out, side), W(cache, side))))
      return;
  check_run(r);
}

/* Backward with the cache reads angles from a reference forward (same on both sides). */
static void op_lrpe_backward(run *r) {
  const conf_case *c = r->c;
  int64_t n = c->nq, xs[4] = {c->b, c->hq, n, c->dk}, os[4] = {c->b, c->hq, n, 2 * c->dk},
          cs[3] = {c->hq, n, c->dk};
  float *hd = NULL;
  pair *dout = add_random(r, "dout", c->dtype, 4, os, 1, &hd);
  pair *theta = add_theta(r);
  pair *cache = NULL;
  if (c->cache && !r->failed) {
    pattn_tensor *fx = NULL, *fo = NULL, *fc = NULL;
    float *hc = xmalloc((size_t)tu_numel(3, cs) * sizeof *hc);
    pattn_status st = pattn_tensor_create(g_ctx[REF], c->dtype, 4, xs, &fx);
    if (st == PATTN_OK) st = pattn_tensor_create(g_ctx[REF], c->dtype, 4, os, &fo);
    if (st == PATTN_OK) st = pattn_tensor_create(g_ctx[REF], PATTN_F32, 3, cs, &fc);
    if (st == PATTN_OK) {
      size_t nx = (size_t)tu_numel(4, xs);
      float *zeros = calloc(nx, sizeof *zeros);
      st = zeros ? pattn_tensor_write_f32(fx, zeros, nx) : PATTN_ERR_OUT_OF_MEMORY;
      free(zeros);
    }
    if (st == PATTN_OK)
      st = pattn_md_lrpe_cosine_forward(g_ctx[REF], fx, T(theta, REF), c->ndims, c->shape, c->extra, fo, fc);
    if (st == PATTN_OK) st = pattn_tensor_read_f32(fc, hc, (size_t)tu_numel(3, cs));
    if (!call_failed(r, REF, "pattn_md_lrpe_cosine_forward (angle cache for backward)", st))
      cache = add_input(r, "angle_cache", PATTN_F32, 3, cs, hc);
    free(hc);
    pattn_tensor_destroy(fx);
    pattn_tensor_destroy(fo);
    pattn_tensor_destroy(fc);
  }
  pair *dx = add_output(r, "dx", c->dtype, 4, xs, TOL_LRPE);
  if (dx && hd) dx->in_max = max_abs_of(hd, (size_t)tu_numel(4, os));
  free(hd);
  if (r->failed) return;
  for (int side = 0; side < SIDES; side++)
    if (call_failed(r, side, "pattn_md_lrpe_cosine_backward",
                    pattn_md_lrpe_cosine_backward(g_ctx[side], T(dout, side), T(theta, side), c->ndims, c->shape,
                                                  c->extra, T(cache, side), W(dx, side))))
      return;
  check_run(r);
}

/* ------------------------------------------------------------------------------------ */
/* Driver: one cmocka test per op family, iterating that family's cases.                */

static int selected(const conf_case *c) {
  if (g_only_case >= 0) return c->index == g_only_case;
  if (!g_filter || !*g_filter) return 1;
  char buf[256];
  snprintf(buf, sizeof buf, "%s", g_filter);
  for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save))
    if (*w == '!' ? strstr(c->desc, w + 1) != NULL : strstr(c->desc, w) == NULL) return 0;
  return 1;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void run_case(const conf_case *c) {
  run r;
  memset(&r, 0, sizeof r);
  r.c = c;
  r.rng = tu_rng_seed(conf_case_seed(c->index));
  double t0 = now_s();
  switch (c->op) {
  case CONF_ATTENTION: op_attention(&r); break;
  case CONF_ATTENTION_BWD: op_attention_backward(&r); break;
  case CONF_DILATED: op_dilated(&r); break;
  case CONF_RING: op_ring(&r); break;
  case CONF_BLOCK_SPARSE: op_block_sparse(&r); break;
  case CONF_MHA: op_mha(&r); break;
  case CONF_LRPE_FWD: op_lrpe_forward(&r); break;
  case CONF_LRPE_BWD: op_lrpe_backward(&r); break;
  default: failf(&r, "suite bug: unknown op"); break;
  }
  run_free(&r);
  if (r.failed) {
    g_failed++;
    printf("FAIL case %d seed 0x%016llx: %s: %s\n", c->index, (unsigned long long)conf_case_seed(c->index),
           c->desc, r.why);
  } else {
    g_passed++;
    if (g_verbose) printf("ok   case %d (%.2f s): %s\n", c->index, now_s() - t0, c->desc);
  }
  fflush(stdout);
}

static void test_family(void **state) {
  conf_op op = *(const conf_op *)*state;
  int before = g_failed, ran = 0;
  for (int i = 0; i < g_ncases; i++)
    if (g_cases[i].op == op && selected(&g_cases[i])) {
      run_case(&g_cases[i]);
      ran++;
    }
  if (g_failed > before) fail_msg("%s: %d of %d cases failed", conf_op_name(op), g_failed - before, ran);
}

/* Is `name` in the comma-separated $PATTN_REQUIRE_BACKENDS? */
static int required(const char *name) {
  const char *req = getenv("PATTN_REQUIRE_BACKENDS");
  if (!req) return 0;
  size_t len = strlen(name);
  for (const char *p = req; *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    while (n && (*p == ' ')) p++, n--;
    while (n && p[n - 1] == ' ') n--;
    if (n == len && !strncmp(p, name, n)) return 1;
    if (!end) break;
    p = end + 1;
  }
  return 0;
}

int main(void) {
  g_backend = getenv("PATTN_BACKEND");
  if (!g_backend || !*g_backend) g_backend = "cpu";
  g_verbose = getenv("PATTN_CONF_VERBOSE") && atoi(getenv("PATTN_CONF_VERBOSE")) > 0;
  g_filter = getenv("PATTN_CONF_FILTER");
  if (getenv("PATTN_CONF_CASE")) g_only_case = atoi(getenv("PATTN_CONF_CASE"));

  pattn_status st;
  g_ctx[TEST] = tu_context(g_backend, 0, &st);
  if (!g_ctx[TEST]) {
    int absent = st == PATTN_ERR_NO_BACKEND || st == PATTN_ERR_NO_DEVICE;
    if (absent && !required(g_backend)) {
      printf("SKIP: backend '%s' is not available: %s: %s\n", g_backend, pattn_status_string(st), pattn_last_error(NULL));
      return 77;
    }
    fprintf(stderr, "conformance: backend '%s' %s: %s: %s\n", g_backend,
            absent ? "is required ($PATTN_REQUIRE_BACKENDS) but not available" : "failed to start",
            pattn_status_string(st), pattn_last_error(NULL));
    return 1;
  }
  g_ctx[REF] = tu_context("cpu", 1, &st);
  if (!g_ctx[REF]) {
    fprintf(stderr, "conformance: the CPU reference failed to start: %s: %s\n", pattn_status_string(st),
            pattn_last_error(NULL));
    pattn_context_destroy(g_ctx[TEST]);
    return 1;
  }
  /* both sides: an out-of-bounds write of the reference is a bug too */
  for (int s = 0; s < SIDES; s++) pattn_testing_set_guard_bytes(g_ctx[s], GUARD_BYTES);
  g_ncases = conf_build_cases(&g_cases);
  printf("conformance: %s (%s) against the CPU reference, %d cases in the table\n", pattn_context_backend(g_ctx[TEST]),
         pattn_context_device(g_ctx[TEST]), g_ncases);

  static const conf_op ops[CONF_NUM_OPS] = {CONF_ATTENTION, CONF_ATTENTION_BWD, CONF_DILATED, CONF_RING,
                                            CONF_BLOCK_SPARSE, CONF_MHA, CONF_LRPE_FWD, CONF_LRPE_BWD};
  /* one cmocka test per op family, named after it */
  struct CMUnitTest tests[CONF_NUM_OPS];
  for (int i = 0; i < CONF_NUM_OPS; i++) {
    struct CMUnitTest t = {conf_op_name(ops[i]), test_family, NULL, NULL, (void *)&ops[i]};
    tests[i] = t;
  }
  double t0 = now_s();
  int rc = cmocka_run_group_tests_name("conformance", tests, NULL, NULL);
  printf("conformance %s: %d passed, %d failed (%.1f s)\n", g_backend, g_passed, g_failed, now_s() - t0);
  free(g_cases);
  for (int s = 0; s < SIDES; s++) pattn_context_destroy(g_ctx[s]);
  return rc || g_failed ? 1 : 0;
}

/* Dense attention backward (SPEC.md section 1) on both CPU modes, checked two independent
 * ways: against the spec's formula evaluated in double inside the test (ref_naive.c), and
 * against central finite differences of the library's own forward pass. Covers GQA/MQA
 * summation of dk/dv, bottom-right causal with nq != nk (rows that see nothing), custom
 * scale, dv != dk, BHND/BNHD, f32/f16/bf16 and both algorithms. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref_naive.h"
#include "test_util.h"

typedef struct bwd_case {
  int64_t b, hq, hkv, nq, nk, dk, dv;
  pattn_layout layout;
  pattn_dtype dt;
  pattn_algo algo;
  int causal;
  float scale;
  uint64_t seed;
} bwd_case;



static void run_case(const bwd_case *c) {
  const int64_t b = c->b, hq = c->hq, hkv = c->hkv, nq = c->nq, nk = c->nk, dk = c->dk, dv = c->dv;
  const size_t nqe = (size_t)(b * hq * nq * dk), nke = (size_t)(b * hkv * nk * dk);
  const size_t nve = (size_t)(b * hkv * nk * dv), noe = (size_t)(b * hq * nq * dv);
  float *q = ref_randn(c->seed, nqe, c->dt), *k = ref_randn(c->seed + 1, nke, c->dt);
  float *v = ref_randn(c->seed + 2, nve, c->dt), *dout = ref_randn(c->seed + 3, noe, c->dt);
  double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)dk);

  /* out and lse come from the test's reference forward, so only the backward is tested */
  float *out = malloc(noe * sizeof(float)), *lse = malloc((size_t)(b * hq * nq) * sizeof(float));
  float *dq_ref = malloc(nqe * sizeof(float)), *dk_ref = malloc(nke * sizeof(float));
  float *dv_ref = malloc(nve * sizeof(float));
  assert_true(out && lse && dq_ref && dk_ref && dv_ref);
  ref_attention(b, hq, hkv, nq, nk, dk, dv, q, k, v, NULL, 1, 1, scale, c->causal, out, lse);
  tu_round_to(c->dt, out, noe);
  ref_attention_backward(b, hq, hkv, nq, nk, dk, dv, q, k, v, dout, scale, c->causal, dq_ref,
                         dk_ref, dv_ref);

  pattn_tensor *tq = ref_upload(c->dt, c->layout, b, hq, nq, dk, q);
  pattn_tensor *tk = ref_upload(c->dt, c->layout, b, hkv, nk, dk, k);
  pattn_tensor *tv = ref_upload(c->dt, c->layout, b, hkv, nk, dv, v);
  pattn_tensor *to = ref_upload(c->dt, c->layout, b, hq, nq, dv, out);
  pattn_tensor *tgo = ref_upload(c->dt, c->layout, b, hq, nq, dv, dout);
  int64_t lshape[3] = {b, hq, nq};
  pattn_tensor *tl = tu_tensor(g_ctx, PATTN_F32, 3, lshape, lse);
  pattn_tensor *tdq = ref_upload(c->dt, c->layout, b, hq, nq, dk, NULL);
  pattn_tensor *tdk = ref_upload(c->dt, c->layout, b, hkv, nk, dk, NULL);
  pattn_tensor *tdv = ref_upload(c->dt, c->layout, b, hkv, nk, dv, NULL);
  tu_poison(tdq);
  tu_poison(tdk);
  tu_poison(tdv);

  pattn_attention_desc desc = {0};
  desc.struct_size = sizeof desc;
  desc.layout = c->layout;
  desc.scale = c->scale;
  desc.causal = c->causal;
  desc.algo = c->algo;
  pattn_status st = pattn_attention_backward(g_ctx, &desc, tq, tk, tv, to, tl, tgo, tdq, tdk, tdv);
  if (st != PATTN_OK)
    fail_msg("pattn_attention_backward: %s: %s", pattn_status_string(st), pattn_last_error(g_ctx));
  ref_check_guards("dq", tdq);
  ref_check_guards("dk", tdk);
  ref_check_guards("dv", tdv);

  float *gq = ref_download(tdq, c->layout, b, hq, nq, dk);
  float *gk = ref_download(tdk, c->layout, b, hkv, nk, dk);
  float *gv = ref_download(tdv, c->layout, b, hkv, nk, dv);
  ref_check("dq", gq, dq_ref, nqe, c->dt);
  ref_check("dk", gk, dk_ref, nke, c->dt);
  ref_check("dv", gv, dv_ref, nve, c->dt);
  /* a query row that sees no key has no gradient */
  if (c->causal && nq > nk)
    for (int64_t ib = 0; ib < b; ib++)
      for (int64_t ih = 0; ih < hq; ih++)
        for (int64_t i = 0; i < nq - nk; i++)
          for (int64_t x = 0; x < dk; x++)
            assert_true(gq[((ib * hq + ih) * nq + i) * dk + x] == 0.0f);

  free(gq); free(gk); free(gv);
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
  pattn_tensor_destroy(to); pattn_tensor_destroy(tgo); pattn_tensor_destroy(tl);
  pattn_tensor_destroy(tdq); pattn_tensor_destroy(tdk); pattn_tensor_destroy(tdv);
  free(q); free(k); free(v); free(dout); free(out); free(lse);
  free(dq_ref); free(dk_ref); free(dv_ref);
}

static void run_algos(bwd_case c) {
  const pattn_algo algos[3] = {PATTN_ALGO_NAIVE, PATTN_ALGO_FLASH, PATTN_ALGO_AUTO};
  for (int a = 0; a < 3; a++) {
    c.algo = algos[a];
    run_case(&c);
  }
}

static void test_basic(void **state) {
  (void)state;
  run_algos((bwd_case){.b = 2, .hq = 2, .hkv = 2, .nq = 9, .nk = 9, .dk = 8, .dv = 8, .seed = 300});
  run_algos((bwd_case){.b = 1, .hq = 1, .hkv = 1, .nq = 5, .nk = 13, .dk = 6, .dv = 10, .seed = 301});
  run_algos((bwd_case){.b = 1, .hq = 2, .hkv = 2, .nq = 70, .nk = 90, .dk = 16, .dv = 16, .seed = 302});
}

static void test_causal(void **state) {
  (void)state;
  run_algos((bwd_case){.b = 1, .hq = 2, .hkv = 2, .nq = 11, .nk = 11, .dk = 8, .dv = 8, .causal = 1, .seed = 310});
  run_algos((bwd_case){.b = 1, .hq = 2, .hkv = 2, .nq = 5, .nk = 11, .dk = 8, .dv = 8, .causal = 1, .seed = 311});
  run_algos((bwd_case){.b = 2, .hq = 1, .hkv = 1, .nq = 11, .nk = 5, .dk = 8, .dv = 8, .causal = 1, .seed = 312});
}

static void test_gqa_mqa(void **state) {
  (void)state;
  run_algos((bwd_case){.b = 2, .hq = 4, .hkv = 2, .nq = 7, .nk = 9, .dk = 8, .dv = 8, .seed = 320});
  run_algos((bwd_case){.b = 1, .hq = 3, .hkv = 1, .nq = 8, .nk = 8, .dk = 4, .dv = 6, .causal = 1, .seed = 321});
}

static void test_scale_and_layout(void **state) {
  (void)state;
  run_algos((bwd_case){.b = 1, .hq = 2, .hkv = 2, .nq = 6, .nk = 6, .dk = 8, .dv = 8, .scale = 0.9f, .seed = 330});
  run_algos((bwd_case){.layout = PATTN_LAYOUT_BNHD, .b = 2, .hq = 4, .hkv = 2, .nq = 6, .nk = 10,
                       .dk = 8, .dv = 4, .causal = 1, .seed = 331});
}

static void test_half_types(void **state) {
  (void)state;
  run_algos((bwd_case){.dt = PATTN_F16, .b = 1, .hq = 2, .hkv = 1, .nq = 12, .nk = 12, .dk = 16, .dv = 16, .causal = 1, .seed = 340});
  run_algos((bwd_case){.dt = PATTN_BF16, .b = 1, .hq = 2, .hkv = 2, .nq = 12, .nk = 16, .dk = 16, .dv = 16, .seed = 341});
}

/* ---- finite differences of the library's forward ---- */
typedef struct fd_problem {
  int64_t hq, hkv, nq, nk, d;
  int causal;
  float *q, *k, *v, *dout;
  pattn_tensor *tq, *tk, *tv, *to;
} fd_problem;

/* L = sum(dout * attention(q, k, v)) with the library's forward in f32. */
static double fd_loss(fd_problem *p) {
  pattn_attention_desc desc = {.struct_size = sizeof desc, .causal = p->causal, .algo = PATTN_ALGO_NAIVE};
  assert_int_equal(pattn_tensor_write_f32(p->tq, p->q, (size_t)(p->hq * p->nq * p->d)), PATTN_OK);
  assert_int_equal(pattn_tensor_write_f32(p->tk, p->k, (size_t)(p->hkv * p->nk * p->d)), PATTN_OK);
  assert_int_equal(pattn_tensor_write_f32(p->tv, p->v, (size_t)(p->hkv * p->nk * p->d)), PATTN_OK);
  assert_int_equal(pattn_attention(g_ctx, &desc, p->tq, p->tk, p->tv, NULL, p->to, NULL), PATTN_OK);
  float *o = tu_read(p->to);
  double l = 0;
  for (int64_t i = 0; i < p->hq * p->nq * p->d; i++) l += (double)o[i] * p->dout[i];
  free(o);
  return l;
}

static void fd_check(fd_problem *p, const char *name, float *x, const float *grad, int64_t n) {
  const float eps = 1e-2f;
  for (int64_t i = 0; i < n; i++) {
    float keep = x[i];
    x[i] = keep + eps;
    double lp = fd_loss(p);
    x[i] = keep - eps;
    double lm = fd_loss(p);
    x[i] = keep;
    double fd = (lp - lm) / ((double)(keep + eps) - (double)(keep - eps)); /* the real step */
    if (fabs(fd - grad[i]) > 3e-3 * (1.0 + fabs(fd)))
      fail_msg("%s[%lld]: backward %g, finite difference %g", name, (long long)i,
               (double)grad[i], fd);
  }
}

static void run_fd(int64_t hq, int64_t hkv, int64_t nq, int64_t nk, int causal, uint64_t seed) {
  const int64_t d = 3;
  fd_problem p = {.hq = hq, .hkv = hkv, .nq = nq, .nk = nk, .d = d, .causal = causal};
  p.q = ref_randn(seed, (size_t)(hq * nq * d), PATTN_F32);
  p.k = ref_randn(seed + 1, (size_t)(hkv * nk * d), PATTN_F32);
  p.v = ref_randn(seed + 2, (size_t)(hkv * nk * d), PATTN_F32);
  p.dout = ref_randn(seed + 3, (size_t)(hq * nq * d), PATTN_F32);
  int64_t sq[4] = {1, hq, nq, d}, sk[4] = {1, hkv, nk, d}, sl[3] = {1, hq, nq};
  p.tq = tu_tensor(g_ctx, PATTN_F32, 4, sq, p.q);
  p.tk = tu_tensor(g_ctx, PATTN_F32, 4, sk, p.k);
  p.tv = tu_tensor(g_ctx, PATTN_F32, 4, sk, p.v);
  p.to = tu_tensor(g_ctx, PATTN_F32, 4, sq, NULL);
  pattn_tensor *tl = tu_tensor(g_ctx, PATTN_F32, 3, sl, NULL);
  pattn_tensor *tgo = tu_tensor(g_ctx, PATTN_F32, 4, sq, p.dout);
  pattn_tensor *tdq = tu_tensor(g_ctx, PATTN_F32, 4, sq, NULL);
  pattn_tensor *tdk = tu_tensor(g_ctx, PATTN_F32, 4, sk, NULL);
  pattn_tensor *tdv = tu_tensor(g_ctx, PATTN_F32, 4, sk, NULL);

  /* forward then backward entirely in the library */
  pattn_attention_desc desc = {.struct_size = sizeof desc, .causal = causal};
  assert_int_equal(pattn_attention(g_ctx, &desc, p.tq, p.tk, p.tv, NULL, p.to, tl), PATTN_OK);
  assert_int_equal(pattn_attention_backward(g_ctx, &desc, p.tq, p.tk, p.tv, p.to, tl, tgo, tdq, tdk, tdv), PATTN_OK);
  float *gq = tu_read(tdq), *gk = tu_read(tdk), *gv = tu_read(tdv);
  fd_check(&p, "dq", p.q, gq, hq * nq * d);
  fd_check(&p, "dk", p.k, gk, hkv * nk * d);
  fd_check(&p, "dv", p.v, gv, hkv * nk * d);

  free(gq); free(gk); free(gv);
  pattn_tensor_destroy(p.tq); pattn_tensor_destroy(p.tk); pattn_tensor_destroy(p.tv);
  pattn_tensor_destroy(p.to); pattn_tensor_destroy(tl); pattn_tensor_destroy(tgo);
  pattn_tensor_destroy(tdq); pattn_tensor_destroy(tdk); pattn_tensor_destroy(tdv);
  free(p.q); free(p.k); free(p.v); free(p.dout);
}

static void test_finite_differences(void **state) {
  (void)state;
  run_fd(2, 1, 3, 4, 0, 350);  /* GQA: dk/dv collect both query heads */
  run_fd(2, 2, 4, 4, 1, 351);  /* causal */
  run_fd(1, 1, 5, 3, 1, 352);  /* causal nq > nk: two rows see nothing */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),         cmocka_unit_test(test_causal),
      cmocka_unit_test(test_gqa_mqa),       cmocka_unit_test(test_scale_and_layout),
      cmocka_unit_test(test_half_types),    cmocka_unit_test(test_finite_differences),
  };
  return REF_RUN_BOTH_MODES("backward", tests) ? 1 : 0;
}

/* Dense attention forward (SPEC.md section 1) against a naive double-precision reference
 * written in the test (ref_naive.c), on both CPU modes: algorithms NAIVE/FLASH/AUTO,
 * GQA/MQA, bottom-right causal with nq != nk, additive masks with broadcast dims and -inf
 * rows, lse, custom scale, BHND/BNHD, f32/f16/bf16. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref_naive.h"
#include "test_util.h"

enum mask_kind { MASK_NONE, MASK_FULL, MASK_BCAST_B, MASK_BCAST_H, MASK_BCAST_BH };

typedef struct dense_case {
  int64_t b, hq, hkv, nq, nk, dk, dv;
  pattn_layout layout;
  pattn_dtype dt;
  pattn_algo algo;
  pattn_precision precision;
  int causal;
  float scale;     /* 0: default */
  int mask;        /* enum mask_kind */
  int mask_holes;  /* put -inf entries and fully -inf rows into the mask */
  int lse;         /* request lse */
  uint64_t seed;
} dense_case;



/* Inputs must come back unchanged ("nothing outside an output may change"). */
static void expect_unchanged(const char *what, const pattn_tensor *t, const float *bhnd,
                             pattn_layout layout, int64_t b, int64_t h, int64_t n, int64_t d) {
  float *x = ref_download(t, layout, b, h, n, d);
  if (memcmp(x, bhnd, (size_t)(b * h * n * d) * sizeof(float)) != 0)
    fail_msg("%s changed during the call", what);
  free(x);
}

static void run_case(const dense_case *c) {
  const int64_t b = c->b, hq = c->hq, hkv = c->hkv, nq = c->nq, nk = c->nk;
  const size_t nqe = (size_t)(b * hq * nq * c->dk), nke = (size_t)(b * hkv * nk * c->dk);
  const size_t nve = (size_t)(b * hkv * nk * c->dv), noe = (size_t)(b * hq * nq * c->dv);
  float *q = ref_randn(c->seed, nqe, c->dt);
  float *k = ref_randn(c->seed + 1, nke, c->dt);
  float *v = ref_randn(c->seed + 2, nve, c->dt);

  int64_t mb = (c->mask == MASK_BCAST_B || c->mask == MASK_BCAST_BH) ? 1 : b;
  int64_t mh = (c->mask == MASK_BCAST_H || c->mask == MASK_BCAST_BH) ? 1 : hq;
  float *mask = NULL;
  if (c->mask != MASK_NONE) {
    size_t nm = (size_t)(mb * mh * nq * nk);
    mask = ref_randn(c->seed + 3, nm, PATTN_F32);
    if (c->mask_holes) {
      tu_rng r = tu_rng_seed(c->seed + 4);
      for (size_t i = 0; i < nm; i++)
        if (tu_uniform(&r) < 0.3) mask[i] = -INFINITY;
      /* row 1 of every mask matrix sees nothing: out 0, lse -inf */
      for (int64_t m = 0; m < mb * mh; m++)
        for (int64_t j = 0; j < nk; j++) mask[(m * nq + 1) * nk + j] = -INFINITY;
    }
  }
  double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)c->dk);
  float *out_ref = malloc(noe * sizeof(float)), *lse_ref = malloc((size_t)(b * hq * nq) * sizeof(float));
  assert_non_null(out_ref);
  assert_non_null(lse_ref);
  ref_attention(b, hq, hkv, nq, nk, c->dk, c->dv, q, k, v, mask, mb, mh, scale, c->causal,
                out_ref, lse_ref);

  pattn_tensor *tq = ref_upload(c->dt, c->layout, b, hq, nq, c->dk, q);
  pattn_tensor *tk = ref_upload(c->dt, c->layout, b, hkv, nk, c->dk, k);
  pattn_tensor *tv = ref_upload(c->dt, c->layout, b, hkv, nk, c->dv, v);
  pattn_tensor *to = ref_upload(c->dt, c->layout, b, hq, nq, c->dv, NULL);
  int64_t lshape[3] = {b, hq, nq};
  pattn_tensor *tl = c->lse ? tu_tensor(g_ctx, PATTN_F32, 3, lshape, NULL) : NULL;
  int64_t mshape[4] = {mb, mh, nq, nk};
  pattn_tensor *tm = mask ? tu_tensor(g_ctx, PATTN_F32, 4, mshape, mask) : NULL;
  tu_poison(to);
  if (tl) tu_poison(tl);

  pattn_attention_desc desc = {0};
  desc.struct_size = sizeof desc;
  desc.layout = c->layout;
  desc.scale = c->scale;
  desc.causal = c->causal;
  desc.algo = c->algo;
  desc.precision = c->precision;
  pattn_status st = pattn_attention(g_ctx, &desc, tq, tk, tv, tm, to, tl);
  if (st != PATTN_OK) fail_msg("pattn_attention: %s: %s", pattn_status_string(st), pattn_last_error(g_ctx));

  ref_check_guards("out", to);
  if (tl) ref_check_guards("lse", tl);
  float *out = ref_download(to, c->layout, b, hq, nq, c->dv);
  if (c->precision == PATTN_PRECISION_TF32 && c->dt == PATTN_F32)
    ref_check_tol("out (tf32)", out, out_ref, noe, 2e-3, 2e-2); /* SPEC.md section 7 */
  else
    ref_check("out", out, out_ref, noe, c->dt);
  if (tl) {
    float *lse = tu_read(tl);
    if (c->precision == PATTN_PRECISION_TF32)
      ref_check_tol("lse (tf32)", lse, lse_ref, (size_t)(b * hq * nq), 2e-3, 2e-2);
    else
      ref_check("lse", lse, lse_ref, (size_t)(b * hq * nq), PATTN_F32);
    free(lse);
  }
  /* rows with no visible key are exactly 0 */
  for (size_t i = 0; i < noe; i++)
    if (out_ref[i] == 0.0f && lse_ref[i / (size_t)c->dv] == -INFINITY && out[i] != 0.0f)
      fail_msg("out[%zu] = %g in a row with no visible key", i, (double)out[i]);
  expect_unchanged("q", tq, q, c->layout, b, hq, nq, c->dk);
  expect_unchanged("k", tk, k, c->layout, b, hkv, nk, c->dk);
  expect_unchanged("v", tv, v, c->layout, b, hkv, nk, c->dv);
  if (tm) {
    float *m2 = tu_read(tm);
    assert_memory_equal(m2, mask, (size_t)(mb * mh * nq * nk) * sizeof(float));
    free(m2);
  }

  free(out);
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
  pattn_tensor_destroy(to); pattn_tensor_destroy(tl); pattn_tensor_destroy(tm);
  free(q); free(k); free(v); free(mask); free(out_ref); free(lse_ref);
}

static const pattn_algo all_algos[] = {PATTN_ALGO_NAIVE, PATTN_ALGO_FLASH, PATTN_ALGO_AUTO};

/* Runs c with every algorithm. */
static void run_all_algos(dense_case c) {
  for (int a = 0; a < 3; a++) {
    c.algo = all_algos[a];
    run_case(&c);
  }
}

/* Hand-computed: scores [0, ln 3] -> p = [1/4, 3/4]; v = [4, 8] -> out = 7, lse = ln 4. */
static void test_hand_computed(void **state) {
  (void)state;
  const float q[1] = {1.0f}, k[2] = {0.0f, (float)log(3.0)}, v[2] = {4.0f, 8.0f};
  int64_t sq[4] = {1, 1, 1, 1}, sk[4] = {1, 1, 2, 1}, sl[3] = {1, 1, 1};
  for (int a = 0; a < 3; a++) {
    pattn_tensor *tq = tu_tensor(g_ctx, PATTN_F32, 4, sq, q), *tk = tu_tensor(g_ctx, PATTN_F32, 4, sk, k);
    pattn_tensor *tv = tu_tensor(g_ctx, PATTN_F32, 4, sk, v), *to = tu_tensor(g_ctx, PATTN_F32, 4, sq, NULL);
    pattn_tensor *tl = tu_tensor(g_ctx, PATTN_F32, 3, sl, NULL);
    tu_poison(to);
    tu_poison(tl);
    pattn_attention_desc desc = {.struct_size = sizeof desc, .scale = 1.0f, .algo = all_algos[a]};
    assert_int_equal(pattn_attention(g_ctx, &desc, tq, tk, tv, NULL, to, tl), PATTN_OK);
    float o, l;
    assert_int_equal(pattn_tensor_read_f32(to, &o, 1), PATTN_OK);
    assert_int_equal(pattn_tensor_read_f32(tl, &l, 1), PATTN_OK);
    assert_true(fabs(o - 7.0) < 1e-5);
    assert_true(fabs(l - log(4.0)) < 1e-6);
    /* default scale 1/sqrt(dk) = 1 for dk = 1: same result */
    desc.scale = 0.0f;
    assert_int_equal(pattn_attention(g_ctx, &desc, tq, tk, tv, NULL, to, tl), PATTN_OK);
    assert_int_equal(pattn_tensor_read_f32(to, &o, 1), PATTN_OK);
    assert_true(fabs(o - 7.0) < 1e-5);
    /* a mask of [0, -inf] leaves only key 0: out = 4, lse = 0 */
    const float m[2] = {0.0f, -INFINITY};
    int64_t sm[4] = {1, 1, 1, 2};
    pattn_tensor *tm = tu_tensor(g_ctx, PATTN_F32, 4, sm, m);
    assert_int_equal(pattn_attention(g_ctx, &desc, tq, tk, tv, tm, to, tl), PATTN_OK);
    assert_int_equal(pattn_tensor_read_f32(to, &o, 1), PATTN_OK);
    assert_int_equal(pattn_tensor_read_f32(tl, &l, 1), PATTN_OK);
    assert_true(fabs(o - 4.0) < 1e-6);
    assert_true(fabs(l) < 1e-6);
    pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
    pattn_tensor_destroy(to); pattn_tensor_destroy(tl); pattn_tensor_destroy(tm);
  }
}

static void test_basic(void **state) {
  (void)state;
  run_all_algos((dense_case){.b = 2, .hq = 3, .hkv = 3, .nq = 17, .nk = 17, .dk = 16, .dv = 16,
                             .lse = 1, .seed = 100});
}

static void test_rect_and_dv(void **state) {
  (void)state;
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 2, .nq = 7, .nk = 19, .dk = 8, .dv = 12,
                             .lse = 1, .seed = 110});
  run_all_algos((dense_case){.b = 2, .hq = 1, .hkv = 1, .nq = 1, .nk = 33, .dk = 5, .dv = 3,
                             .lse = 1, .seed = 111});
}

static void test_long_rows(void **state) { /* several flash tiles along both axes */
  (void)state;
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 1, .nq = 130, .nk = 151, .dk = 32, .dv = 32,
                             .lse = 1, .causal = 1, .seed = 120});
}

static void test_causal_bottom_right(void **state) {
  (void)state;
  /* nq < nk: query i sees keys j <= i + 12 */
  run_all_algos((dense_case){.b = 2, .hq = 2, .hkv = 2, .nq = 7, .nk = 19, .dk = 8, .dv = 8,
                             .causal = 1, .lse = 1, .seed = 130});
  /* nq > nk: the first 12 rows see nothing (out 0, lse -inf) */
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 2, .nq = 19, .nk = 7, .dk = 8, .dv = 8,
                             .causal = 1, .lse = 1, .seed = 131});
  run_all_algos((dense_case){.b = 1, .hq = 3, .hkv = 3, .nq = 23, .nk = 23, .dk = 16, .dv = 16,
                             .causal = 1, .lse = 1, .seed = 132});
}

static void test_gqa_mqa(void **state) {
  (void)state;
  run_all_algos((dense_case){.b = 2, .hq = 6, .hkv = 2, .nq = 9, .nk = 13, .dk = 8, .dv = 8,
                             .lse = 1, .seed = 140});
  run_all_algos((dense_case){.b = 1, .hq = 4, .hkv = 1, .nq = 11, .nk = 11, .dk = 8, .dv = 4,
                             .causal = 1, .lse = 1, .seed = 141});
}

static void test_custom_scale(void **state) {
  (void)state;
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 2, .nq = 9, .nk = 9, .dk = 16, .dv = 16,
                             .scale = 0.37f, .lse = 1, .seed = 150});
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 1, .nq = 5, .nk = 12, .dk = 4, .dv = 4,
                             .scale = 2.5f, .causal = 1, .lse = 1, .seed = 151});
}

static void test_mask(void **state) {
  (void)state;
  for (int m = MASK_FULL; m <= MASK_BCAST_BH; m++) {
    run_all_algos((dense_case){.b = 2, .hq = 3, .hkv = 3, .nq = 6, .nk = 10, .dk = 8, .dv = 8,
                               .mask = m, .lse = 1, .seed = 160 + (uint64_t)m});
    /* -inf entries and fully masked rows */
    run_all_algos((dense_case){.b = 2, .hq = 4, .hkv = 2, .nq = 6, .nk = 10, .dk = 8, .dv = 8,
                               .mask = m, .mask_holes = 1, .lse = 1, .seed = 170 + (uint64_t)m});
  }
  /* mask together with causal */
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 2, .nq = 8, .nk = 12, .dk = 8, .dv = 8,
                             .mask = MASK_FULL, .mask_holes = 1, .causal = 1, .lse = 1, .seed = 180});
}

static void test_no_lse(void **state) {
  (void)state;
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 2, .nq = 9, .nk = 9, .dk = 8, .dv = 8,
                             .causal = 1, .mask = MASK_BCAST_B, .seed = 190});
}

static void test_bnhd(void **state) {
  (void)state;
  run_all_algos((dense_case){.layout = PATTN_LAYOUT_BNHD, .b = 2, .hq = 4, .hkv = 2, .nq = 9,
                             .nk = 14, .dk = 8, .dv = 6, .causal = 1, .lse = 1, .seed = 200});
  run_all_algos((dense_case){.layout = PATTN_LAYOUT_BNHD, .b = 1, .hq = 3, .hkv = 3, .nq = 10,
                             .nk = 7, .dk = 8, .dv = 8, .mask = MASK_FULL, .mask_holes = 1,
                             .lse = 1, .seed = 201});
}

static void test_half_types(void **state) {
  (void)state;
  const pattn_dtype dts[2] = {PATTN_F16, PATTN_BF16};
  for (int i = 0; i < 2; i++) {
    run_all_algos((dense_case){.dt = dts[i], .b = 2, .hq = 2, .hkv = 2, .nq = 17, .nk = 17,
                               .dk = 16, .dv = 16, .lse = 1, .seed = 210});
    run_all_algos((dense_case){.dt = dts[i], .layout = PATTN_LAYOUT_BNHD, .b = 1, .hq = 4,
                               .hkv = 1, .nq = 9, .nk = 21, .dk = 32, .dv = 32, .causal = 1,
                               .mask = MASK_BCAST_H, .mask_holes = 1, .lse = 1, .seed = 211});
  }
}

/* Odd sizes and the head dims kernels specialise (64, 128). */
static void test_odd_sizes_and_head_dims(void **state) {
  (void)state;
  run_all_algos((dense_case){.b = 1, .hq = 1, .hkv = 1, .nq = 1, .nk = 1, .dk = 1, .dv = 1, .lse = 1, .seed = 230});
  run_all_algos((dense_case){.b = 1, .hq = 1, .hkv = 1, .nq = 1, .nk = 1, .dk = 7, .dv = 5, .causal = 1, .lse = 1, .seed = 231});
  run_all_algos((dense_case){.b = 1, .hq = 2, .hkv = 1, .nq = 77, .nk = 113, .dk = 64, .dv = 64, .causal = 1, .lse = 1, .seed = 232});
  run_all_algos((dense_case){.b = 1, .hq = 1, .hkv = 1, .nq = 113, .nk = 77, .dk = 128, .dv = 128, .causal = 1, .lse = 1, .seed = 233});
  run_all_algos((dense_case){.layout = PATTN_LAYOUT_BNHD, .b = 3, .hq = 2, .hkv = 2, .nq = 17, .nk = 17, .dk = 128, .dv = 64, .lse = 1, .seed = 234});
}

/* Opt-in TF32 for f32 (SPEC.md section 7: 2e-3 rel-L2, 2e-2 max abs). */
static void test_tf32(void **state) {
  (void)state;
  run_all_algos((dense_case){.precision = PATTN_PRECISION_TF32, .b = 1, .hq = 2, .hkv = 2, .nq = 33, .nk = 40, .dk = 32, .dv = 32, .causal = 1, .lse = 1, .seed = 240});
  run_all_algos((dense_case){.precision = PATTN_PRECISION_TF32, .b = 1, .hq = 2, .hkv = 1, .nq = 9, .nk = 12, .dk = 16, .dv = 16, .mask = MASK_FULL, .mask_holes = 1, .lse = 1, .seed = 241});
}

/* FLASH is "fused and tiled ... never n^2 memory": the peak extra memory of one call stays
 * far below the n x n score matrix. */
static void test_flash_memory(void **state) {
  (void)state;
  const int64_t n = 1024, d = 16;
  int64_t shape[4] = {1, 1, n, d};
  float *x = ref_randn(220, (size_t)(n * d), PATTN_F32);
  pattn_tensor *tq = tu_tensor(g_ctx, PATTN_F32, 4, shape, x);
  pattn_tensor *tk = tu_tensor(g_ctx, PATTN_F32, 4, shape, x);
  pattn_tensor *tv = tu_tensor(g_ctx, PATTN_F32, 4, shape, x);
  pattn_tensor *to = tu_tensor(g_ctx, PATTN_F32, 4, shape, NULL);
  size_t mark = ref_mem_mark();
  pattn_attention_desc desc = {.struct_size = sizeof desc, .algo = PATTN_ALGO_FLASH, .causal = 1};
  assert_int_equal(pattn_attention(g_ctx, &desc, tq, tk, tv, NULL, to, NULL), PATTN_OK);
  size_t extra = ref_mem_extra(mark);
  size_t scores = (size_t)(n * n) * sizeof(float);
  if (extra >= scores / 4)
    fail_msg("FLASH used %zu extra bytes; the n^2 score matrix is %zu", extra, scores);
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
  pattn_tensor_destroy(to);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_computed), cmocka_unit_test(test_basic),
      cmocka_unit_test(test_rect_and_dv),   cmocka_unit_test(test_long_rows),
      cmocka_unit_test(test_causal_bottom_right), cmocka_unit_test(test_gqa_mqa),
      cmocka_unit_test(test_custom_scale),  cmocka_unit_test(test_mask),
      cmocka_unit_test(test_no_lse),        cmocka_unit_test(test_bnhd),
      cmocka_unit_test(test_half_types),    cmocka_unit_test(test_flash_memory),
      cmocka_unit_test(test_odd_sizes_and_head_dims), cmocka_unit_test(test_tf32),
  };
  return REF_RUN_BOTH_MODES("attention", tests) ? 1 : 0;
}

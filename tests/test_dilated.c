/* Dilated attention (SPEC.md section 2) on both CPU modes, against the test's reference:
 * dense attention (ref_head) applied to the gathered positions of every segment pattern,
 * merged by head groups (/G) or by softmax over the branches' lse. Covers causal, h not
 * divisible by G, rates larger than segments, uncovered positions, BNHD/BHND, f16/bf16. */
#include <math.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref_naive.h"
#include "test_util.h"

typedef struct dil_case {
  int64_t b, h, n, d;
  int nseg;
  int64_t seg[4], rate[4];
  pattn_dilated_merge merge;
  pattn_layout layout;
  pattn_dtype dt;
  int causal;
  float scale;
  int gather; /* 0 fused; 1 gather/scatter; 2 a caller's struct that ends before `gather` */
  uint64_t seed;
} dil_case;

static pattn_tensor *upload(const dil_case *c, const float *bhnd) {
  return ref_upload(c->dt, c->layout, c->b, c->h, c->n, c->d, bhnd);
}

/* Runs the case; returns the library's output in BHND order (caller frees). */
static float *run_lib(const dil_case *c, const float *q, const float *k, const float *v) {
  pattn_tensor *tq = upload(c, q), *tk = upload(c, k), *tv = upload(c, v), *to = upload(c, NULL);
  tu_poison(to);
  pattn_dilated_desc desc = {0};
  desc.struct_size = sizeof desc;
  desc.layout = c->layout;
  desc.scale = c->scale;
  desc.causal = c->causal;
  desc.num_segments = c->nseg;
  desc.segment_lengths = c->seg;
  desc.dilation_rates = c->rate;
  desc.merge = c->merge;
  desc.gather = c->gather != 0;
  /* an older caller's shorter struct: accepted, and the bytes past its end (gather = 1
   * here) must not be read */
  if (c->gather == 2) desc.struct_size = offsetof(pattn_dilated_desc, gather);
  pattn_status st = pattn_dilated_attention(g_ctx, &desc, tq, tk, tv, to);
  if (st != PATTN_OK)
    fail_msg("pattn_dilated_attention: %s: %s", pattn_status_string(st), pattn_last_error(g_ctx));
  ref_check_guards("out", to);
  float *o = ref_download(to, c->layout, c->b, c->h, c->n, c->d);
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
  pattn_tensor_destroy(to);
  return o;
}

static void run_case(const dil_case *c) {
  const size_t ne = (size_t)(c->b * c->h * c->n * c->d);
  float *q = ref_randn(c->seed, ne, c->dt), *k = ref_randn(c->seed + 1, ne, c->dt);
  float *v = ref_randn(c->seed + 2, ne, c->dt);
  float *ref = malloc(ne * sizeof(float));
  assert_non_null(ref);
  double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)c->d);
  ref_dilated(c->b, c->h, c->n, c->d, q, k, v, c->nseg, c->seg, c->rate,
              c->merge == PATTN_DILATED_MERGE_LSE, c->causal, scale, ref);
  float *o = run_lib(c, q, k, v);
  ref_check("dilated out", o, ref, ne, c->dt);
  /* positions outside every pattern are exactly 0 */
  for (size_t i = 0; i < ne; i++)
    if (ref[i] == 0.0f && o[i] != 0.0f) {
      /* a reference 0 can only be an uncovered position (random data is never exactly 0
       * elsewhere); the library must write 0 there, not leave poison or garbage */
      fail_msg("out[%zu] = %g where no pattern covers the position", i, (double)o[i]);
    }
  free(o); free(q); free(k); free(v); free(ref);
}

/* Both layouts, non-causal and causal, fused and gather/scatter (same function), and a
 * descriptor from a caller that predates the gather field. */
static void run_variants(dil_case c) {
  for (int lay = 0; lay < 2; lay++)
    for (int causal = 0; causal < 2; causal++)
      for (int gather = 0; gather < 3; gather++) {
        c.layout = lay ? PATTN_LAYOUT_BNHD : PATTN_LAYOUT_BHND;
        c.causal = causal;
        c.gather = gather;
        run_case(&c);
        c.seed += 10;
      }
}

static void test_head_groups(void **state) {
  (void)state;
  run_variants((dil_case){.b = 2, .h = 4, .n = 16, .d = 8, .nseg = 2, .seg = {4, 8}, .rate = {1, 2}, .seed = 400});
  run_variants((dil_case){.b = 1, .h = 3, .n = 32, .d = 16, .nseg = 3, .seg = {8, 16, 32}, .rate = {1, 2, 4}, .seed = 401});
}

static void test_head_groups_uneven(void **state) { /* h % G != 0: first groups get one more */
  (void)state;
  run_variants((dil_case){.b = 1, .h = 5, .n = 16, .d = 8, .nseg = 3, .seg = {4, 8, 16}, .rate = {1, 2, 4}, .seed = 410});
  run_variants((dil_case){.b = 2, .h = 7, .n = 12, .d = 4, .nseg = 2, .seg = {6, 12}, .rate = {1, 3}, .seed = 411});
}

static void test_head_groups_rate_above_segment(void **state) {
  (void)state;
  /* group 1: offset 1 % 8 = 1, one position per segment; group 2: offset 2 % 4 = 2 >= s,
   * nothing covered, its heads stay 0 */
  run_variants((dil_case){.b = 1, .h = 3, .n = 8, .d = 8, .nseg = 3, .seg = {4, 4, 2}, .rate = {1, 8, 4}, .seed = 420});
}

static void test_lse_merge(void **state) {
  (void)state;
  run_variants((dil_case){.b = 2, .h = 4, .n = 16, .d = 8, .nseg = 2, .seg = {4, 8}, .rate = {1, 2},
                          .merge = PATTN_DILATED_MERGE_LSE, .seed = 430});
  run_variants((dil_case){.b = 1, .h = 5, .n = 24, .d = 8, .nseg = 3, .seg = {6, 12, 24}, .rate = {1, 2, 3},
                          .merge = PATTN_DILATED_MERGE_LSE, .seed = 431});
}

static void test_lse_merge_uncovered(void **state) {
  (void)state;
  /* h = 2 < r = 4: blocks of ceil(2/4) = 1 head, offsets 0 and 1 only: positions with
   * offset 2 and 3 are covered by no branch and are 0 */
  run_variants((dil_case){.b = 1, .h = 2, .n = 16, .d = 8, .nseg = 1, .seg = {8}, .rate = {4},
                          .merge = PATTN_DILATED_MERGE_LSE, .seed = 440});
  /* rate above segment: heads 2, 3 start past their segment */
  run_variants((dil_case){.b = 1, .h = 4, .n = 8, .d = 4, .nseg = 2, .seg = {2, 8}, .rate = {4, 2},
                          .merge = PATTN_DILATED_MERGE_LSE, .seed = 441});
}

static void test_scale_and_half(void **state) {
  (void)state;
  run_variants((dil_case){.b = 1, .h = 4, .n = 16, .d = 8, .nseg = 2, .seg = {8, 16}, .rate = {1, 2},
                          .scale = 0.6f, .seed = 450});
  run_variants((dil_case){.b = 1, .h = 4, .n = 16, .d = 16, .nseg = 2, .seg = {8, 16}, .rate = {1, 2},
                          .dt = PATTN_F16, .seed = 451});
  run_variants((dil_case){.b = 1, .h = 4, .n = 16, .d = 16, .nseg = 2, .seg = {8, 16}, .rate = {1, 2},
                          .dt = PATTN_BF16, .merge = PATTN_DILATED_MERGE_LSE, .seed = 452});
}

/* Identity written without ref_dilated: two groups with s = n, r = 1 each run dense
 * attention on their heads, and out /= G halves it. */
static void test_identity_dense_over_g(void **state) {
  (void)state;
  dil_case c = {.b = 1, .h = 2, .n = 8, .d = 4, .nseg = 2, .seg = {8, 8}, .rate = {1, 1}, .seed = 460};
  const size_t ne = 64;
  float *q = ref_randn(c.seed, ne, PATTN_F32), *k = ref_randn(c.seed + 1, ne, PATTN_F32);
  float *v = ref_randn(c.seed + 2, ne, PATTN_F32), dense[64];
  ref_attention(1, 2, 2, 8, 8, 4, 4, q, k, v, NULL, 1, 1, 0.5, 0, dense, NULL);
  for (size_t i = 0; i < ne; i++) dense[i] /= 2.0f;
  float *o = run_lib(&c, q, k, v);
  ref_check("dense / G", o, dense, ne, PATTN_F32);
  /* LSE merge of two identical full branches: weights 1/2 each, so exactly dense */
  c.merge = PATTN_DILATED_MERGE_LSE;
  for (size_t i = 0; i < ne; i++) dense[i] *= 2.0f;
  free(o);
  o = run_lib(&c, q, k, v);
  ref_check("lse merge of equal branches", o, dense, ne, PATTN_F32);
  free(o); free(q); free(k); free(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_head_groups),
      cmocka_unit_test(test_head_groups_uneven),
      cmocka_unit_test(test_head_groups_rate_above_segment),
      cmocka_unit_test(test_lse_merge),
      cmocka_unit_test(test_lse_merge_uncovered),
      cmocka_unit_test(test_scale_and_half),
      cmocka_unit_test(test_identity_dense_over_g),
  };
  return REF_RUN_BOTH_MODES("dilated", tests) ? 1 : 0;
}

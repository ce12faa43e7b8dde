/* Ring attention on one context (SPEC.md section 3) on both CPU modes: whatever the ring
 * size, the result is dense attention without a mask (the test's double reference), with
 * lse, causal, BHND/BNHD, f16/bf16; and extra memory does not grow like n^2 / ring. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref_naive.h"
#include "test_util.h"

typedef struct ring_case {
  int64_t b, h, n, d;
  int64_t hkv, nq; /* 0: h and n (GQA and nq != nk are plain dense attention too) */
  int ring;
  pattn_layout layout;
  pattn_dtype dt;
  int causal, lse;
  float scale;
  uint64_t seed;
} ring_case;

static pattn_tensor *upload(const ring_case *c, int64_t h, int64_t n, const float *bhnd) {
  return ref_upload(c->dt, c->layout, c->b, h, n, c->d, bhnd);
}

static void run_case(const ring_case *c) {
  const int64_t hkv = c->hkv ? c->hkv : c->h, nq = c->nq ? c->nq : c->n;
  const size_t ne = (size_t)(c->b * c->h * nq * c->d), nl = (size_t)(c->b * c->h * nq);
  const size_t nke = (size_t)(c->b * hkv * c->n * c->d);
  float *q = ref_randn(c->seed, ne, c->dt), *k = ref_randn(c->seed + 1, nke, c->dt);
  float *v = ref_randn(c->seed + 2, nke, c->dt);
  float *ref = malloc(ne * sizeof(float)), *lref = malloc(nl * sizeof(float));
  assert_true(ref && lref);
  double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)c->d);
  ref_attention(c->b, c->h, hkv, nq, c->n, c->d, c->d, q, k, v, NULL, 1, 1, scale, c->causal,
                ref, lref);

  pattn_tensor *tq = upload(c, c->h, nq, q), *tk = upload(c, hkv, c->n, k);
  pattn_tensor *tv = upload(c, hkv, c->n, v), *to = upload(c, c->h, nq, NULL);
  int64_t lshape[3] = {c->b, c->h, nq};
  pattn_tensor *tl = c->lse ? tu_tensor(g_ctx, PATTN_F32, 3, lshape, NULL) : NULL;
  tu_poison(to);
  if (tl) tu_poison(tl);
  pattn_ring_desc desc = {0};
  desc.struct_size = sizeof desc;
  desc.layout = c->layout;
  desc.scale = c->scale;
  desc.causal = c->causal;
  desc.ring_size = c->ring;
  pattn_status st = pattn_ring_attention(g_ctx, &desc, NULL, tq, tk, tv, to, tl);
  if (st != PATTN_OK)
    fail_msg("pattn_ring_attention (ring %d): %s: %s", c->ring, pattn_status_string(st),
             pattn_last_error(g_ctx));
  ref_check_guards("out", to);
  float *o = ref_download(to, c->layout, c->b, c->h, nq, c->d);
  ref_check("ring out", o, ref, ne, c->dt);
  if (tl) {
    ref_check_guards("lse", tl);
    float *l = tu_read(tl);
    ref_check("ring lse", l, lref, nl, PATTN_F32);
    free(l);
  }
  free(o);
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
  pattn_tensor_destroy(to); pattn_tensor_destroy(tl);
  free(q); free(k); free(v); free(ref); free(lref);
}

/* ring sizes 1, 2, 4, with and without causal */
static void run_rings(ring_case c) {
  const int rings[3] = {1, 2, 4};
  for (int r = 0; r < 3; r++)
    for (int causal = 0; causal < 2; causal++) {
      c.ring = rings[r];
      c.causal = causal;
      run_case(&c);
    }
}

static void test_ring_f32(void **state) {
  (void)state;
  run_rings((ring_case){.b = 2, .h = 3, .n = 16, .d = 8, .lse = 1, .seed = 500});
  run_rings((ring_case){.b = 1, .h = 2, .n = 36, .d = 16, .lse = 1, .scale = 0.3f, .seed = 501});
  run_rings((ring_case){.b = 1, .h = 2, .n = 20, .d = 8, .lse = 0, .seed = 502});
  /* one position per chunk */
  run_case(&(ring_case){.b = 1, .h = 2, .n = 8, .d = 8, .ring = 8, .lse = 1, .seed = 503});
  run_case(&(ring_case){.b = 1, .h = 2, .n = 8, .d = 8, .ring = 8, .causal = 1, .lse = 1, .seed = 504});
  /* odd chunk length and a head dim kernels specialise */
  run_rings((ring_case){.b = 1, .h = 1, .n = 68, .d = 64, .lse = 1, .seed = 505});
}

static void test_ring_gqa_and_rect(void **state) {
  (void)state;
  run_rings((ring_case){.b = 2, .h = 4, .hkv = 2, .n = 16, .d = 8, .lse = 1, .seed = 540});
  run_rings((ring_case){.b = 1, .h = 3, .hkv = 1, .n = 12, .d = 8, .lse = 1, .layout = PATTN_LAYOUT_BNHD, .seed = 541});
  /* nq != nk: causal is bottom-right, the first rows of nq > nk see nothing */
  run_rings((ring_case){.b = 1, .h = 2, .nq = 5, .n = 16, .d = 8, .lse = 1, .seed = 542});
  run_rings((ring_case){.b = 1, .h = 2, .nq = 20, .n = 8, .d = 8, .lse = 1, .seed = 543});
}

static void test_ring_bnhd(void **state) {
  (void)state;
  run_rings((ring_case){.layout = PATTN_LAYOUT_BNHD, .b = 2, .h = 3, .n = 12, .d = 8, .lse = 1, .seed = 510});
}

static void test_ring_half(void **state) {
  (void)state;
  run_rings((ring_case){.dt = PATTN_F16, .b = 1, .h = 2, .n = 16, .d = 16, .lse = 1, .seed = 520});
  run_rings((ring_case){.dt = PATTN_BF16, .layout = PATTN_LAYOUT_BNHD, .b = 1, .h = 2, .n = 16,
                        .d = 16, .lse = 1, .seed = 521});
}

/* The seeds' ring attention peaked at b*h*n*(n/ring) scores; SPEC.md: extra memory must not
 * grow with n^2. One call's extra memory stays far below that. */
static void test_ring_memory(void **state) {
  (void)state;
  const int64_t n = 1024, d = 16;
  int64_t shape[4] = {1, 1, n, d};
  float *x = ref_randn(530, (size_t)(n * d), PATTN_F32);
  pattn_tensor *tq = tu_tensor(g_ctx, PATTN_F32, 4, shape, x);
  pattn_tensor *tk = tu_tensor(g_ctx, PATTN_F32, 4, shape, x);
  pattn_tensor *tv = tu_tensor(g_ctx, PATTN_F32, 4, shape, x);
  pattn_tensor *to = tu_tensor(g_ctx, PATTN_F32, 4, shape, NULL);
  size_t mark = ref_mem_mark();
  pattn_ring_desc desc = {.struct_size = sizeof desc, .ring_size = 2, .causal = 1};
  assert_int_equal(pattn_ring_attention(g_ctx, &desc, NULL, tq, tk, tv, to, NULL), PATTN_OK);
  size_t extra = ref_mem_extra(mark);
  size_t seeds = (size_t)(n * (n / 2)) * sizeof(float);
  if (extra >= seeds / 4)
    fail_msg("ring used %zu extra bytes; the seeds' n*(n/ring) scores are %zu", extra, seeds);
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
  pattn_tensor_destroy(to);
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ring_f32), cmocka_unit_test(test_ring_bnhd),
      cmocka_unit_test(test_ring_gqa_and_rect),
      cmocka_unit_test(test_ring_half), cmocka_unit_test(test_ring_memory),
  };
  return REF_RUN_BOTH_MODES("ring", tests) ? 1 : 0;
}

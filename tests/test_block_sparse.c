/* Block-sparse attention (SPEC.md section 4) on both CPU modes, against the test's reference:
 * dense attention with -inf outside the active blocks and one softmax per row (joint
 * normalisation). Covers a case that per-block normalisation would fail, token-level causal,
 * per-head layouts, empty rows (0), partial edge blocks, BNHD, f16/bf16. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ref_naive.h"
#include "test_util.h"

typedef struct bs_case {
  int64_t b, h, nq, nk, d;
  int block, layout_heads;
  const uint8_t *layout; /* [layout_heads][nqb][nkb] */
  pattn_layout mem_layout;
  pattn_dtype dt;
  int causal;
  float scale;
  uint64_t seed;
} bs_case;

static pattn_tensor *upload(const bs_case *c, int64_t n, const float *bhnd) {
  return ref_upload(c->dt, c->mem_layout, c->b, c->h, n, c->d, bhnd);
}

/* Library result in BHND order. */
static float *run_lib(const bs_case *c, const float *q, const float *k, const float *v) {
  pattn_tensor *tq = upload(c, c->nq, q), *tk = upload(c, c->nk, k), *tv = upload(c, c->nk, v);
  pattn_tensor *to = upload(c, c->nq, NULL);
  tu_poison(to);
  pattn_block_sparse_desc desc = {0};
  desc.struct_size = sizeof desc;
  desc.layout = c->mem_layout;
  desc.scale = c->scale;
  desc.causal = c->causal;
  desc.block_size = c->block;
  desc.layout_heads = c->layout_heads;
  desc.block_layout = c->layout;
  pattn_status st = pattn_block_sparse_attention(g_ctx, &desc, tq, tk, tv, to);
  if (st != PATTN_OK)
    fail_msg("pattn_block_sparse_attention: %s: %s", pattn_status_string(st), pattn_last_error(g_ctx));
  ref_check_guards("out", to);
  float *o = ref_download(to, c->mem_layout, c->b, c->h, c->nq, c->d);
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv);
  pattn_tensor_destroy(to);
  return o;
}

static void run_case(const bs_case *c) {
  const size_t nqe = (size_t)(c->b * c->h * c->nq * c->d), nke = (size_t)(c->b * c->h * c->nk * c->d);
  float *q = ref_randn(c->seed, nqe, c->dt), *k = ref_randn(c->seed + 1, nke, c->dt);
  float *v = ref_randn(c->seed + 2, nke, c->dt);
  float *ref = malloc(nqe * sizeof(float));
  assert_non_null(ref);
  double scale = c->scale > 0 ? c->scale : 1.0 / sqrt((double)c->d);
  ref_block_sparse(c->b, c->h, c->nq, c->nk, c->d, q, k, v, c->block, c->layout_heads, c->layout,
                   c->causal, scale, ref);
  float *o = run_lib(c, q, k, v);
  ref_check("block-sparse out", o, ref, nqe, c->dt);
  for (size_t i = 0; i < nqe; i++) /* empty rows are exactly 0 */
    if (ref[i] == 0.0f && o[i] != 0.0f) fail_msg("out[%zu] = %g in an empty row", i, (double)o[i]);
  free(o); free(q); free(k); free(v); free(ref);
}

static void run_both_layouts(bs_case c) {
  c.mem_layout = PATTN_LAYOUT_BHND;
  run_case(&c);
  c.mem_layout = PATTN_LAYOUT_BNHD;
  run_case(&c);
}

/* Joint normalisation: every query row sees two key blocks. Per-block normalisation (the
 * seeds' bug) gives sum over blocks of each block's own softmax average; the test first
 * shows that this differs from the joint result, then that the library gives the joint one. */
static void test_joint_normalisation(void **state) {
  (void)state;
  /* nqb = nkb = 4, B = 4: row I sees blocks I and (I + 2) % 4 */
  uint8_t lay[16] = {0};
  for (int i = 0; i < 4; i++) {
    lay[i * 4 + i] = 1;
    lay[i * 4 + (i + 2) % 4] = 1;
  }
  bs_case c = {.b = 1, .h = 2, .nq = 16, .nk = 16, .d = 8, .block = 4, .layout_heads = 1, .layout = lay, .seed = 600};
  const size_t ne = 2 * 16 * 8;
  float *q = ref_randn(c.seed, ne, PATTN_F32), *k = ref_randn(c.seed + 1, ne, PATTN_F32);
  float *v = ref_randn(c.seed + 2, ne, PATTN_F32);
  float joint[2 * 16 * 8], perblock[2 * 16 * 8] = {0}, part[2 * 16 * 8];
  ref_block_sparse(1, 2, 16, 16, 8, q, k, v, 4, 1, lay, 0, 1.0 / sqrt(8.0), joint);
  for (int blk = 0; blk < 2; blk++) { /* each active block normalised on its own */
    uint8_t one[16] = {0};
    for (int i = 0; i < 4; i++) one[i * 4 + (blk ? (i + 2) % 4 : i)] = 1;
    ref_block_sparse(1, 2, 16, 16, 8, q, k, v, 4, 1, one, 0, 1.0 / sqrt(8.0), part);
    for (size_t i = 0; i < ne; i++) perblock[i] += part[i];
  }
  assert_true(tu_rel_l2(perblock, joint, ne) > 0.1); /* the two really differ */
  float *o = run_lib(&c, q, k, v);
  ref_check("joint normalisation", o, joint, ne, PATTN_F32);
  free(o);
  c.mem_layout = PATTN_LAYOUT_BNHD;
  o = run_lib(&c, q, k, v);
  ref_check("joint normalisation (BNHD)", o, joint, ne, PATTN_F32);
  free(o); free(q); free(k); free(v);
}

/* Pseudo-random layout from the test's own generator, with at least one block per row. */
static void random_layout(uint8_t *lay, int64_t count, int64_t nkb, uint64_t seed, int allow_empty) {
  tu_rng r = tu_rng_seed(seed);
  for (int64_t i = 0; i < count; i++) lay[i] = tu_uniform(&r) < 0.4;
  if (!allow_empty)
    for (int64_t row = 0; row < count / nkb; row++) lay[row * nkb + row % nkb] = 1;
}

static void test_shared_layout(void **state) {
  (void)state;
  uint8_t lay[5 * 5];
  random_layout(lay, 25, 5, 610, 0);
  run_both_layouts((bs_case){.b = 2, .h = 3, .nq = 20, .nk = 20, .d = 8, .block = 4, .layout_heads = 1, .layout = lay, .seed = 611});
  /* scale override */
  run_both_layouts((bs_case){.b = 1, .h = 2, .nq = 20, .nk = 20, .d = 8, .block = 4, .layout_heads = 1, .layout = lay, .scale = 0.8f, .seed = 612});
}

static void test_edge_blocks(void **state) { /* nq, nk not multiples of B: partial blocks */
  (void)state;
  uint8_t lay[3 * 4]; /* ceil(10/4) x ceil(13/4) */
  random_layout(lay, 12, 4, 620, 0);
  run_both_layouts((bs_case){.b = 1, .h = 2, .nq = 10, .nk = 13, .d = 8, .block = 4, .layout_heads = 1, .layout = lay, .seed = 621});
}

static void test_per_head_layouts(void **state) {
  (void)state;
  uint8_t lay[3 * 4 * 4];
  random_layout(lay, 48, 4, 630, 0);
  run_both_layouts((bs_case){.b = 2, .h = 3, .nq = 16, .nk = 16, .d = 8, .block = 4, .layout_heads = 3, .layout = lay, .seed = 631});
}

static void test_causal(void **state) {
  (void)state;
  uint8_t lay[4 * 4];
  memset(lay, 1, sizeof lay);
  run_both_layouts((bs_case){.b = 1, .h = 2, .nq = 16, .nk = 16, .d = 8, .block = 4, .layout_heads = 1, .layout = lay, .causal = 1, .seed = 640});
  random_layout(lay, 16, 4, 641, 0);
  run_both_layouts((bs_case){.b = 1, .h = 2, .nq = 16, .nk = 16, .d = 8, .block = 4, .layout_heads = 1, .layout = lay, .causal = 1, .seed = 642});
  /* bottom-right with nq < nk (SPEC.md section 1's causal) */
  uint8_t lay2[2 * 4];
  memset(lay2, 1, sizeof lay2);
  lay2[1] = 0;
  run_both_layouts((bs_case){.b = 1, .h = 2, .nq = 8, .nk = 16, .d = 8, .block = 4, .layout_heads = 1, .layout = lay2, .causal = 1, .seed = 643});
}

static void test_empty_rows(void **state) {
  (void)state;
  uint8_t lay[2 * 4 * 4];
  random_layout(lay, 32, 4, 650, 1);
  memset(lay + 4, 0, 4);      /* head 0, block row 1: nothing */
  memset(lay + 16 + 8, 0, 4); /* head 1, block row 2: nothing */
  run_both_layouts((bs_case){.b = 1, .h = 2, .nq = 16, .nk = 16, .d = 8, .block = 4, .layout_heads = 2, .layout = lay, .seed = 651});
  /* causal on top of a block that lies entirely above the diagonal: all rows empty */
  uint8_t up[2 * 2] = {0, 1, 0, 0};
  run_both_layouts((bs_case){.b = 1, .h = 1, .nq = 8, .nk = 8, .d = 4, .block = 4, .layout_heads = 1, .layout = up, .causal = 1, .seed = 652});
}

static void test_half(void **state) {
  (void)state;
  uint8_t lay[4 * 4];
  random_layout(lay, 16, 4, 660, 0);
  run_both_layouts((bs_case){.dt = PATTN_F16, .b = 1, .h = 2, .nq = 32, .nk = 32, .d = 16, .block = 8, .layout_heads = 1, .layout = lay, .seed = 661});
  run_both_layouts((bs_case){.dt = PATTN_BF16, .b = 1, .h = 2, .nq = 32, .nk = 32, .d = 16, .block = 8, .layout_heads = 1, .layout = lay, .causal = 1, .seed = 662});
}

/* A full layout is plain dense attention (written against ref_attention directly). */
static void test_full_is_dense(void **state) {
  (void)state;
  uint8_t lay[3 * 3];
  memset(lay, 1, sizeof lay);
  bs_case c = {.b = 1, .h = 2, .nq = 12, .nk = 12, .d = 8, .block = 4, .layout_heads = 1, .layout = lay, .seed = 670};
  const size_t ne = 2 * 12 * 8;
  float *q = ref_randn(c.seed, ne, PATTN_F32), *k = ref_randn(c.seed + 1, ne, PATTN_F32);
  float *v = ref_randn(c.seed + 2, ne, PATTN_F32), dense[2 * 12 * 8];
  ref_attention(1, 2, 2, 12, 12, 8, 8, q, k, v, NULL, 1, 1, 1.0 / sqrt(8.0), 0, dense, NULL);
  float *o = run_lib(&c, q, k, v);
  ref_check("full layout", o, dense, ne, PATTN_F32);
  free(o); free(q); free(k); free(v);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_joint_normalisation), cmocka_unit_test(test_shared_layout),
      cmocka_unit_test(test_edge_blocks),         cmocka_unit_test(test_per_head_layouts),
      cmocka_unit_test(test_causal),              cmocka_unit_test(test_empty_rows),
      cmocka_unit_test(test_half),                cmocka_unit_test(test_full_is_dense),
  };
  return REF_RUN_BOTH_MODES("block-sparse", tests) ? 1 : 0;
}

/* An outside program: built against the *installed* pattn with
 *   cc consumer.c $(pkg-config --cflags --libs pattn) -lm
 * it calls every operator of the public API once on the default backend and checks that
 * each succeeds and writes finite numbers. tools/test.sh builds and runs it after
 * `meson install` into a scratch prefix. */
#include <math.h>
#include <pattn/pattn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(call)                                                                                        \
  do {                                                                                                     \
    pattn_status st_ = (call);                                                                             \
    if (st_ != PATTN_OK) {                                                                                 \
      fprintf(stderr, "FAIL %s: %s: %s\n", #call, pattn_status_string(st_), pattn_last_error(ctx));        \
      failures++;                                                                                          \
    }                                                                                                      \
  } while (0)

static pattn_context *ctx;

static pattn_tensor *tensor(pattn_dtype dt, int nd, int64_t a, int64_t b, int64_t c, int64_t d, float seed) {
  int64_t shape[4] = {a, b, c, d};
  pattn_tensor *t = NULL;
  CHECK(pattn_tensor_create(ctx, dt, nd, shape, &t));
  if (!t) exit(1);
  size_t n = 1;
  for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
  float *x = malloc(n * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = sinf(seed + (float)i * 0.37f);
  CHECK(pattn_tensor_write_f32(t, x, n));
  free(x);
  return t;
}

static void expect_finite(const char *what, const pattn_tensor *t) {
  size_t n = pattn_tensor_bytes(t) / pattn_dtype_size(pattn_tensor_dtype(t));
  float *x = malloc(n * sizeof *x);
  CHECK(pattn_tensor_read_f32(t, x, n));
  for (size_t i = 0; i < n; i++)
    if (!isfinite(x[i])) {
      fprintf(stderr, "FAIL %s: element %zu is %f\n", what, i, x[i]);
      failures++;
      break;
    }
  free(x);
}

int main(void) {
  printf("pattn %s (api 0x%06x)\n", pattn_version(), pattn_version_api());
  const char *names[8];
  int count = 8;
  CHECK(pattn_backends_available(names, &count));
  for (int i = 0; i < count; i++) printf("available: %s\n", names[i]);
  pattn_options opt;
  pattn_options_default(&opt);
  if (pattn_context_create(&ctx, &opt) != PATTN_OK) {
    fprintf(stderr, "FAIL context: %s\n", pattn_last_error(NULL));
    return 1;
  }
  printf("backend %s, device %s\n", pattn_context_backend(ctx), pattn_context_device(ctx));
  const int64_t B = 1, H = 4, N = 64, D = 16;

  /* dense attention, forward with lse and backward */
  pattn_tensor *q = tensor(PATTN_F32, 4, B, H, N, D, 0.1f), *k = tensor(PATTN_F32, 4, B, H, N, D, 0.2f),
               *v = tensor(PATTN_F32, 4, B, H, N, D, 0.3f), *o = tensor(PATTN_F32, 4, B, H, N, D, 0),
               *lse = tensor(PATTN_F32, 3, B, H, N, 1, 0), *dout = tensor(PATTN_F32, 4, B, H, N, D, 0.4f),
               *dq = tensor(PATTN_F32, 4, B, H, N, D, 0), *dk = tensor(PATTN_F32, 4, B, H, N, D, 0),
               *dv = tensor(PATTN_F32, 4, B, H, N, D, 0);
  pattn_attention_desc ad = {0};
  ad.struct_size = sizeof ad;
  ad.causal = 1;
  ad.algo = PATTN_ALGO_FLASH;
  CHECK(pattn_attention(ctx, &ad, q, k, v, NULL, o, lse));
  CHECK(pattn_attention_backward(ctx, &ad, q, k, v, o, lse, dout, dq, dk, dv));
  expect_finite("attention", o);
  expect_finite("attention_backward dq", dq);

  /* dilated attention (BNHD: [b, n, h, d]) and its one-context ring form */
  int64_t seg[2] = {16, 32}, rate[2] = {1, 2};
  pattn_dilated_desc dd = {0};
  dd.struct_size = sizeof dd;
  dd.layout = PATTN_LAYOUT_BNHD;
  dd.num_segments = 2;
  dd.segment_lengths = seg;
  dd.dilation_rates = rate;
  pattn_tensor *xq = tensor(PATTN_F32, 4, B, N, H, D, 0.5f), *xk = tensor(PATTN_F32, 4, B, N, H, D, 0.6f),
               *xv = tensor(PATTN_F32, 4, B, N, H, D, 0.7f), *xo = tensor(PATTN_F32, 4, B, N, H, D, 0);
  CHECK(pattn_dilated_attention(ctx, &dd, xq, xk, xv, xo));
  expect_finite("dilated_attention", xo);
  CHECK(pattn_ring_dilated_attention(ctx, &dd, NULL, xq, xk, xv, xo));

  /* ring attention on one context */
  pattn_ring_desc rd = {0};
  rd.struct_size = sizeof rd;
  rd.ring_size = 4;
  CHECK(pattn_ring_attention(ctx, &rd, NULL, q, k, v, o, lse));
  expect_finite("ring_attention", o);

  /* block-sparse with every layout builder */
  int nb = (int)(N / 16), rates[1] = {2};
  uint8_t *layout = calloc((size_t)nb * nb, 1);
  pattn_block_layout_local(layout, nb, nb, 0);
  pattn_block_layout_dilated(layout, nb, nb, 1, rates);
  pattn_block_layout_global(layout, nb, nb, 1);
  pattn_block_layout_random(layout, nb, nb, 0.25, 42);
  pattn_block_layout_causal(layout, nb, nb);
  pattn_block_sparse_desc bd = {0};
  bd.struct_size = sizeof bd;
  bd.block_size = 16;
  bd.layout_heads = 1;
  bd.block_layout = layout;
  CHECK(pattn_block_sparse_attention(ctx, &bd, q, k, v, o));
  expect_finite("block_sparse_attention", o);

  /* multi-head attention over each core */
  const void *cores[4] = {&ad, &dd, &rd, &bd};
  pattn_tensor *x = tensor(PATTN_F32, 3, B, N, H * D, 1, 0.8f), *y = tensor(PATTN_F32, 3, B, N, H * D, 1, 0);
  for (int c = 0; c < 4; c++) {
    pattn_mha_desc md = {0};
    md.struct_size = sizeof md;
    md.embed_dim = H * D;
    md.num_heads = (int)H;
    md.dtype = PATTN_F32;
    md.bias = 1;
    md.qk_norm = 1;
    md.sub_ln = 1;
    md.core = (pattn_mha_core)c;
    md.core_desc = cores[c];
    pattn_mha *mha = NULL;
    CHECK(pattn_mha_create(ctx, &md, &mha));
    if (!mha) continue;
    CHECK(pattn_mha_init_xavier(mha, 7, 0.5f));
    float ones[H * D];
    for (int i = 0; i < H * D; i++) ones[i] = 1.0f;
    CHECK(pattn_mha_set_weight(mha, "sub_ln.weight", ones, (size_t)(H * D)));
    CHECK(pattn_mha_forward(mha, x, x, y));
    expect_finite("mha_forward", y);
    pattn_mha_destroy(mha);
  }

  /* md_lrpe_cosine 2d with extra tokens, forward with angle cache, backward from it */
  int64_t grid[2] = {6, 10}, extra = 4, n = 64, e = 8; /* d=16, m=2: e = next_pow2(8) = 8 */
  pattn_tensor *lx = tensor(PATTN_BF16, 4, B, H, n, D, 0.9f), *theta = tensor(PATTN_F32, 2, H, e, 1, 1, 1.0f),
               *lo = tensor(PATTN_BF16, 4, B, H, n, 2 * D, 0), *cache = tensor(PATTN_F32, 3, H, n, D, 1, 0),
               *ldx = tensor(PATTN_BF16, 4, B, H, n, D, 0);
  CHECK(pattn_md_lrpe_cosine_forward(ctx, lx, theta, 2, grid, extra, lo, cache));
  CHECK(pattn_md_lrpe_cosine_backward(ctx, lo, theta, 2, grid, extra, cache, ldx));
  expect_finite("md_lrpe_cosine", ldx);

  CHECK(pattn_synchronize(ctx));
  size_t in_use = 0, peak = 0;
  CHECK(pattn_memory_stats(ctx, &in_use, &peak));
  printf("memory: %zu bytes in use, peak %zu\n", in_use, peak);
  pattn_memory_reset_peak(ctx);

  pattn_tensor *all[] = {q, k, v, o, lse, dout, dq, dk, dv, xq, xk, xv, xo, x, y, lx, theta, lo, cache, ldx};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) pattn_tensor_destroy(all[i]);
  free(layout);
  pattn_context_destroy(ctx);
  printf("%s: every operator ran\n", failures ? "FAILED" : "ok");
  return failures ? 1 : 0;
}

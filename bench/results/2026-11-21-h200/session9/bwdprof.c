/* session 9: run one bf16 backward shape R times (for ncu / nsys). args: B H N D causal R */
#include <pattn/pattn.h>
#include <stdio.h>
#include <stdlib.h>
static pattn_context *ctx;
#define CK(x) do { pattn_status s_ = (x); if (s_ != PATTN_OK) { printf("FAIL %s: %s\n", #x, pattn_last_error(ctx)); exit(1); } } while (0)
static pattn_tensor *mk(int64_t a, int64_t b, int64_t c, int64_t d, pattn_dtype dt, int fill) {
  int64_t sh[4] = {a, b, c, d};
  pattn_tensor *t;
  CK(pattn_tensor_create(ctx, dt, d ? 4 : 3, sh, &t));
  if (fill) {
    size_t n = (size_t)a * b * c * (d ? d : 1);
    float *x = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    CK(pattn_tensor_write_f32(t, x, n));
    free(x);
  }
  return t;
}
int main(int argc, char **argv) {
  if (argc < 7) return 2;
  int B = atoi(argv[1]), H = atoi(argv[2]), N = atoi(argv[3]), D = atoi(argv[4]), C = atoi(argv[5]), R = atoi(argv[6]);
  pattn_options opt;
  pattn_options_default(&opt);
  opt.backend = "cuda";
  if (pattn_context_create(&ctx, &opt) != PATTN_OK) { printf("no ctx\n"); return 1; }
  pattn_dtype dt = PATTN_BF16;
  pattn_tensor *q = mk(B, H, N, D, dt, 1), *k = mk(B, H, N, D, dt, 1), *v = mk(B, H, N, D, dt, 1), *o = mk(B, H, N, D, dt, 0);
  pattn_tensor *dO = mk(B, H, N, D, dt, 1), *dq = mk(B, H, N, D, dt, 0), *dk = mk(B, H, N, D, dt, 0), *dv = mk(B, H, N, D, dt, 0);
  pattn_tensor *l = mk(B, H, N, 0, PATTN_F32, 0);
  pattn_attention_desc ad = {0};
  ad.struct_size = sizeof ad;
  ad.causal = C;
  ad.algo = PATTN_ALGO_FLASH;
  CK(pattn_attention(ctx, &ad, q, k, v, NULL, o, l));
  for (int r = 0; r < R; r++) CK(pattn_attention_backward(ctx, &ad, q, k, v, o, l, dO, dq, dk, dv));
  CK(pattn_synchronize(ctx));
  printf("bwdprof done\n");
  pattn_context_destroy(ctx);
  return 0;
}

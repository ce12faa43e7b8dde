/* session 8: the wgmma backward against the mma.sync backward (PATTN_CUDA_WGMMA=0) and both
 * against the f32 backward of the same (rounded) inputs, at large shapes.
 * cc bwdcheck.c -I include -L build -lpattn -lm */
#include <math.h>
#include <pattn/pattn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pattn_context *ctx;
#define CK(x) do { pattn_status s_ = (x); if (s_ != PATTN_OK) { printf("FAIL %s: %s\n", #x, pattn_last_error(ctx)); exit(1); } } while (0)

static pattn_tensor *mk(pattn_dtype dt, int64_t a, int64_t b, int64_t c, int64_t d, float *host) {
  int64_t sh[4] = {a, b, c, d};
  pattn_tensor *t;
  CK(pattn_tensor_create(ctx, dt, 4, sh, &t));
  if (host) CK(pattn_tensor_write_f32(t, host, (size_t)(a * b * c * d)));
  return t;
}
static float *rnd(size_t n, float amp) {
  float *x = malloc(n * 4);
  for (size_t i = 0; i < n; i++) x[i] = ((float)rand() / RAND_MAX * 2.0f - 1.0f) * amp;
  return x;
}
static void roundtrip(pattn_dtype dt, float *x, size_t n, int64_t a, int64_t b, int64_t c, int64_t d) {
  pattn_tensor *t = mk(dt, a, b, c, d, x);
  CK(pattn_tensor_read_f32(t, x, n));
  pattn_tensor_destroy(t);
}

/* grads of dtype dt (wgmma on/off) or f32 into g[3] */
static void grads(pattn_dtype dt, int wg, int B, int Hq, int Hk, int N, int NK, int D, int causal, float *q, float *k, float *v,
                  float *dout, float **g) {
  pattn_tensor *tq = mk(dt, B, Hq, N, D, q), *tk = mk(dt, B, Hk, NK, D, k), *tv = mk(dt, B, Hk, NK, D, v);
  pattn_tensor *to = mk(dt, B, Hq, N, D, NULL), *tdo = mk(dt, B, Hq, N, D, dout), *tl;
  pattn_tensor *tdq = mk(dt, B, Hq, N, D, NULL), *tdk = mk(dt, B, Hk, NK, D, NULL), *tdv = mk(dt, B, Hk, NK, D, NULL);
  int64_t sl[3] = {B, Hq, N};
  CK(pattn_tensor_create(ctx, PATTN_F32, 3, sl, &tl));
  pattn_attention_desc ad = {0};
  ad.struct_size = sizeof ad;
  ad.causal = causal;
  ad.algo = PATTN_ALGO_FLASH;
  if (wg) unsetenv("PATTN_CUDA_WGMMA"); else setenv("PATTN_CUDA_WGMMA", "0", 1);
  CK(pattn_attention(ctx, &ad, tq, tk, tv, NULL, to, tl));
  CK(pattn_attention_backward(ctx, &ad, tq, tk, tv, to, tl, tdo, tdq, tdk, tdv));
  CK(pattn_tensor_read_f32(tdq, g[0], (size_t)B * Hq * N * D));
  CK(pattn_tensor_read_f32(tdk, g[1], (size_t)B * Hk * NK * D));
  CK(pattn_tensor_read_f32(tdv, g[2], (size_t)B * Hk * NK * D));
  unsetenv("PATTN_CUDA_WGMMA");
  pattn_tensor *all[] = {tq, tk, tv, to, tdo, tl, tdq, tdk, tdv};
  for (int i = 0; i < 9; i++) pattn_tensor_destroy(all[i]);
}

static int bad;
static void run(int B, int Hq, int Hk, int N, int NK, int D, int causal, pattn_dtype dt) {
  size_t nq = (size_t)B * Hq * N * D, nkv = (size_t)B * Hk * NK * D, sz[3] = {nq, nkv, nkv};
  float *q = rnd(nq, 2), *k = rnd(nkv, 2), *v = rnd(nkv, 2), *dout = rnd(nq, 1);
  roundtrip(dt, q, nq, B, Hq, N, D); roundtrip(dt, k, nkv, B, Hk, NK, D); roundtrip(dt, v, nkv, B, Hk, NK, D);
  roundtrip(dt, dout, nq, B, Hq, N, D);
  float *gw[3], *gm[3], *gr[3];
  for (int i = 0; i < 3; i++) { gw[i] = malloc(sz[i] * 4); gm[i] = malloc(sz[i] * 4); gr[i] = malloc(sz[i] * 4); }
  grads(dt, 1, B, Hq, Hk, N, NK, D, causal, q, k, v, dout, gw);
  grads(dt, 0, B, Hq, Hk, N, NK, D, causal, q, k, v, dout, gm);
  grads(PATTN_F32, 1, B, Hq, Hk, N, NK, D, causal, q, k, v, dout, gr);
  printf("%s B=%d Hq=%d Hk=%d N=%d NK=%d D=%d causal=%d:", dt == PATTN_BF16 ? "bf16" : "f16", B, Hq, Hk, N, NK, D, causal);
  const char *nm[3] = {"dq", "dk", "dv"};
  int ok = 1;
  for (int i = 0; i < 3; i++) {
    double ew = 0, em = 0, mx = 0;
    for (size_t j = 0; j < sz[i]; j++) {
      mx = fmax(mx, fabs(gr[i][j]));
      ew = fmax(ew, fabs(gw[i][j] - gr[i][j]));
      em = fmax(em, fabs(gm[i][j] - gr[i][j]));
      if (!isfinite(gw[i][j])) ew = INFINITY;
    }
    printf(" %s wg %.3g mma %.3g (max %.3g)", nm[i], ew, em, mx);
    if (!(ew <= 1.5 * em + 1e-3 * mx)) ok = 0;
  }
  printf(" %s\n", ok ? "ok" : "BAD");
  bad += !ok;
  for (int i = 0; i < 3; i++) { free(gw[i]); free(gm[i]); free(gr[i]); }
  free(q); free(k); free(v); free(dout);
}

int main(void) {
  pattn_options opt;
  pattn_options_default(&opt);
  opt.backend = "cuda";
  if (pattn_context_create(&ctx, &opt) != PATTN_OK) { printf("no ctx: %s\n", pattn_last_error(NULL)); return 1; }
  srand(1);
  int D[2] = {64, 128};
  for (int di = 0; di < 2; di++)
    for (int c = 0; c < 2; c++) {
      run(2, 4, 4, 1024, 1024, D[di], c, PATTN_BF16);
      run(1, 8, 2, 1000, 1777, D[di], c, PATTN_F16);
      run(1, 2, 1, 3001, 517, D[di], c, PATTN_BF16);
    }
  printf("bwdcheck: %d bad\n", bad);
  pattn_context_destroy(ctx);
  return bad != 0;
}

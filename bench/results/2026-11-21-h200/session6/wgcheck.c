/* session 6: wgmma forward vs mma forward vs an f64 reference on sampled rows, at large shapes.
 * cc wgcheck.c -I include -L build -lpattn -lm */
#include <math.h>
#include <pattn/pattn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pattn_context *ctx;
#define CK(x) do { pattn_status s_ = (x); if (s_ != PATTN_OK) { printf("FAIL %s: %s\n", #x, pattn_last_error(ctx)); exit(1); } } while (0)

static pattn_tensor *mk(pattn_dtype dt, int64_t a, int64_t b, int64_t c, int64_t d, float *host, unsigned seed) {
  int64_t sh[4] = {a, b, c, d};
  pattn_tensor *t;
  CK(pattn_tensor_create(ctx, dt, 4, sh, &t));
  size_t n = (size_t)(a * b * c * d);
  if (host) {
    srand(seed);
    for (size_t i = 0; i < n; i++) host[i] = (float)rand() / RAND_MAX * 4.0f - 2.0f;
    CK(pattn_tensor_write_f32(t, host, n));
    CK(pattn_tensor_read_f32(t, host, n)); /* rounded */
  }
  return t;
}

static void run(int B, int Hq, int Hk, int N, int NK, int D, int causal, pattn_dtype dt) {
  size_t nq = (size_t)B * Hq * N * D, nkv = (size_t)B * Hk * NK * D;
  float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *o1 = malloc(nq * 4), *o2 = malloc(nq * 4);
  float *l1 = malloc((size_t)B * Hq * N * 4), *l2 = malloc((size_t)B * Hq * N * 4);
  pattn_tensor *tq = mk(dt, B, Hq, N, D, q, 1), *tk = mk(dt, B, Hk, NK, D, k, 2), *tv = mk(dt, B, Hk, NK, D, v, 3);
  pattn_tensor *to = mk(dt, B, Hq, N, D, NULL, 0), *tl;
  int64_t sl[3] = {B, Hq, N};
  CK(pattn_tensor_create(ctx, PATTN_F32, 3, sl, &tl));
  pattn_attention_desc ad = {0};
  ad.struct_size = sizeof ad;
  ad.causal = causal;
  ad.algo = PATTN_ALGO_FLASH;
  unsetenv("PATTN_CUDA_WGMMA");
  CK(pattn_attention(ctx, &ad, tq, tk, tv, NULL, to, tl));
  CK(pattn_tensor_read_f32(to, o1, nq));
  CK(pattn_tensor_read_f32(tl, l1, (size_t)B * Hq * N));
  setenv("PATTN_CUDA_WGMMA", "0", 1);
  CK(pattn_attention(ctx, &ad, tq, tk, tv, NULL, to, tl));
  CK(pattn_tensor_read_f32(to, o2, nq));
  CK(pattn_tensor_read_f32(tl, l2, (size_t)B * Hq * N));
  unsetenv("PATTN_CUDA_WGMMA");
  double dmax = 0, e1 = 0, e2 = 0, le1 = 0, le2 = 0;
  for (size_t i = 0; i < nq; i++) dmax = fmax(dmax, fabs(o1[i] - o2[i]));
  double *p = malloc(NK * sizeof *p), sc = 1.0 / sqrt(D);
  srand(7);
  for (int smp = 0; smp < 64; smp++) {
    int b = rand() % B, h = rand() % Hq, i = smp < 4 ? (smp < 2 ? smp : N - 1 - (smp - 2)) : rand() % N, kh = h / (Hq / Hk);
    const float *qr = q + (((size_t)b * Hq + h) * N + i) * D;
    double mx = -INFINITY;
    int last = causal ? i + NK - N : NK - 1;
    if (last > NK - 1) last = NK - 1;
    for (int j = 0; j <= last; j++) {
      const float *kr = k + (((size_t)b * Hk + kh) * NK + j) * D;
      double s = 0;
      for (int c = 0; c < D; c++) s += (double)qr[c] * kr[c];
      p[j] = s * sc;
      mx = fmax(mx, p[j]);
    }
    double sum = 0;
    for (int j = 0; j <= last; j++) sum += (p[j] = exp(p[j] - mx));
    size_t ri = ((size_t)b * Hq + h) * N + i;
    if (last >= 0) {
      double lse = mx + log(sum);
      le1 = fmax(le1, fabs(l1[ri] - lse));
      le2 = fmax(le2, fabs(l2[ri] - lse));
    }
    for (int c = 0; c < D; c++) {
      double acc = 0;
      for (int j = 0; j <= last; j++) acc += p[j] * v[(((size_t)b * Hk + kh) * NK + j) * D + c];
      acc = last >= 0 ? acc / sum : 0;
      e1 = fmax(e1, fabs(o1[ri * D + c] - acc));
      e2 = fmax(e2, fabs(o2[ri * D + c] - acc));
    }
  }
  printf("%s B=%d Hq=%d Hk=%d N=%d NK=%d D=%d causal=%d: |wg-mma| %.3g; vs f64 (64 rows): wg %.3g mma %.3g; lse wg %.3g mma %.3g %s\n",
         dt == PATTN_BF16 ? "bf16" : "f16", B, Hq, Hk, N, NK, D, causal, dmax, e1, e2, le1, le2,
         (e1 <= 1.5 * e2 + 1e-3 && le1 < 1e-3) ? "ok" : "BAD");
  pattn_tensor_destroy(tq); pattn_tensor_destroy(tk); pattn_tensor_destroy(tv); pattn_tensor_destroy(to); pattn_tensor_destroy(tl);
  free(q); free(k); free(v); free(o1); free(o2); free(l1); free(l2); free(p);
}

int main(void) {
  pattn_options opt;
  pattn_options_default(&opt);
  opt.backend = "cuda";
  if (pattn_context_create(&ctx, &opt) != PATTN_OK) { printf("no ctx: %s\n", pattn_last_error(NULL)); return 1; }
  int D[3] = {64, 128, 256};
  for (int di = 0; di < 3; di++)
    for (int c = 0; c < 2; c++) {
      run(2, 4, 4, 2048, 2048, D[di], c, PATTN_BF16);
      run(1, 8, 2, 1000, 1777, D[di], c, PATTN_F16);
      run(1, 2, 1, 3001, 517, D[di], c, PATTN_BF16);
    }
  pattn_context_destroy(ctx);
  return 0;
}

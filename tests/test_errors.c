/* Bad input (API.md "Rules every call keeps", DESIGN.md error-handling tests): every invalid
 * argument of every operator returns PATTN_ERR_INVALID_ARGUMENT, leaves a message in
 * pattn_last_error that names the argument, and leaves every output untouched (outputs are
 * poisoned with NaN first and must still hold the NaN bit pattern). Nothing may crash.
 * Distributed calls with a communicator are checked by test_ring_mpi.c under mpirun (mismatched
 * shapes across ranks, collectively agreed errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pattn/pattn.h"
#include "test_util.h"

static pattn_context *g_ctx;   /* the context every call uses */
static pattn_context *g_other; /* a second context, whose tensors the calls must refuse */

/* ---- helpers ---- */

static pattn_tensor *mk(pattn_context *ctx, pattn_dtype dt, int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
  const int64_t shape[4] = {a, b, c, d};
  pattn_tensor *t = tu_tensor(ctx, dt, ndim, shape, NULL);
  tu_poison(t);
  return t;
}
#define T4(dt, a, b, c, d) mk(g_ctx, dt, 4, a, b, c, d)
#define T3(dt, a, b, c) mk(g_ctx, dt, 3, a, b, c, 0)
#define T2(dt, a, b) mk(g_ctx, dt, 2, a, b, 0, 0)

/* What tu_poison leaves in each dtype: f32 NaN, converted with round-to-nearest-even. */
static int holds_poison(const pattn_tensor *t) {
  size_t bytes = pattn_tensor_bytes(t), es = pattn_dtype_size(pattn_tensor_dtype(t));
  unsigned char *raw = malloc(bytes);
  assert_non_null(raw);
  assert_int_equal(pattn_tensor_read(t, raw, bytes), PATTN_OK);
  int ok = 1;
  for (size_t i = 0; i < bytes / es && ok; i++) {
    if (es == 4) {
      uint32_t u;
      memcpy(&u, raw + 4 * i, 4);
      ok = (u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu);
    } else {
      uint16_t u;
      memcpy(&u, raw + 2 * i, 2);
      ok = pattn_tensor_dtype(t) == PATTN_F16 ? ((u & 0x7c00u) == 0x7c00u && (u & 0x03ffu))
                                              : ((u & 0x7f80u) == 0x7f80u && (u & 0x007fu));
    }
  }
  free(raw);
  return ok;
}

/* Leaves a known message behind, so that a check can tell the next message is new. */
static char g_marker[1024];
static void reset_error(pattn_context *ctx) {
  pattn_tensor *t = NULL;
  const int64_t shape[1] = {1};
  if (ctx) (void)pattn_tensor_create(ctx, (pattn_dtype)77, 1, shape, &t);
  else (void)pattn_memory_stats(NULL, NULL, NULL);
  snprintf(g_marker, sizeof g_marker, "%s", pattn_last_error(ctx));
}

/* Does msg contain one of the '|'-separated words of what? ("" matches anything.) */
static int names_any(const char *msg, const char *what) {
  char buf[256];
  snprintf(buf, sizeof buf, "%s", what);
  if (!*buf) return 1;
  for (char *save = NULL, *w = strtok_r(buf, "|", &save); w; w = strtok_r(NULL, "|", &save))
    if (strstr(msg, w)) return 1;
  return 0;
}

/* Checks one invalid call: status, a fresh message naming `what`, untouched outputs (a
 * NULL-terminated list). */
static void check_invalid(const pattn_context *ctx, pattn_status st, const char *what, const char *call, int line, ...) {
  const char *msg = pattn_last_error(ctx);
  if (st != PATTN_ERR_INVALID_ARGUMENT)
    fail_msg("line %d: %s\n  returned %s (%d), expected INVALID_ARGUMENT; message: \"%s\"", line, call,
             pattn_status_string(st), (int)st, msg ? msg : "(null)");
  if (!msg || !*msg || !strcmp(msg, g_marker))
    fail_msg("line %d: %s\n  gave no message of its own (last error: \"%s\")", line, call, msg ? msg : "(null)");
  if (!names_any(msg, what)) fail_msg("line %d: %s\n  message \"%s\" does not name \"%s\"", line, call, msg, what);
  va_list ap;
  va_start(ap, line);
  for (const pattn_tensor *t; (t = va_arg(ap, const pattn_tensor *)) != NULL;)
    if (!holds_poison(t)) {
      va_end(ap);
      fail_msg("line %d: %s\n  wrote into an output although it failed", line, call);
    }
  va_end(ap);
}

/* EXPECT_INVALID(ctx the message lands on, call, substring the message must hold, outputs...) */
#define EXPECT_INVALID(ctx, call, what, ...)                                                     \
  do {                                                                                           \
    reset_error(ctx);                                                                            \
    pattn_status st_ = (call);                                                                   \
    check_invalid((ctx), st_, (what), #call, __LINE__, __VA_ARGS__);                             \
  } while (0)
#define NONE (const pattn_tensor *)NULL

static void destroy_all(pattn_tensor **ts, int n) {
  for (int i = 0; i < n; i++) pattn_tensor_destroy(ts[i]);
}

/* ---- context creation ---- */

static void test_context(void **state) {
  (void)state;
  char *saved = getenv("PATTN_BACKEND") ? strdup(getenv("PATTN_BACKEND")) : NULL;
  pattn_context *ctx = NULL;

  /* $PATTN_BACKEND=nonsense with no options */
  assert_int_equal(setenv("PATTN_BACKEND", "nonsense", 1), 0);
  assert_int_equal(pattn_context_create(&ctx, NULL), PATTN_ERR_NO_BACKEND);
  assert_null(ctx);
  const char *msg = pattn_last_error(NULL);
  assert_non_null(strstr(msg, "nonsense"));
  assert_non_null(strstr(msg, "cpu"));
  assert_non_null(strstr(msg, "opencl"));
  assert_non_null(strstr(msg, "cuda"));

  /* options default read $PATTN_BACKEND too */
  pattn_options o;
  pattn_options_default(&o);
  assert_int_equal(pattn_context_create(&ctx, &o), PATTN_ERR_NO_BACKEND);
  assert_null(ctx);
  if (saved) setenv("PATTN_BACKEND", saved, 1);
  else unsetenv("PATTN_BACKEND");
  free(saved);

  /* opt.backend = "nonsense" */
  pattn_options_default(&o);
  o.backend = "nonsense";
  assert_int_equal(pattn_context_create(&ctx, &o), PATTN_ERR_NO_BACKEND);
  assert_null(ctx);
  msg = pattn_last_error(NULL);
  assert_non_null(strstr(msg, "cpu"));
  assert_non_null(strstr(msg, "opencl"));
  assert_non_null(strstr(msg, "cuda"));

  EXPECT_INVALID(NULL, pattn_context_create(NULL, NULL), "ctx", NONE);
  pattn_options_default(&o);
  o.backend = "cpu";
  o.struct_size = 0;
  EXPECT_INVALID(NULL, pattn_context_create(&ctx, &o), "struct_size", NONE);
  assert_null(ctx);
  o.struct_size = sizeof o;
  o.num_threads = -3;
  EXPECT_INVALID(NULL, pattn_context_create(&ctx, &o), "num_threads", NONE);
  assert_null(ctx);

  /* the NULL-tolerant calls */
  pattn_context_destroy(NULL);
  pattn_tensor_destroy(NULL);
  pattn_mha_destroy(NULL);
  EXPECT_INVALID(NULL, pattn_synchronize(NULL), "ctx", NONE);
  int count = 0;
  const char *names[1];
  EXPECT_INVALID(NULL, pattn_backends_available(names, &count), "", NONE);
}

/* ---- tensors ---- */

static void test_tensor(void **state) {
  (void)state;
  pattn_tensor *t = NULL;
  int64_t shape[3] = {2, 3, 4};
  EXPECT_INVALID(NULL, pattn_tensor_create(NULL, PATTN_F32, 3, shape, &t), "ctx", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, PATTN_F32, 3, shape, NULL), "NULL", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, PATTN_F32, 0, shape, &t), "ndim", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, PATTN_F32, PATTN_MAX_DIMS + 1, shape, &t), "ndim", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, PATTN_F32, -1, shape, &t), "ndim", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, PATTN_F32, 3, NULL, &t), "shape", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, (pattn_dtype)5, 3, shape, &t), "dtype", NONE);
  int64_t zero[2] = {4, 0}, neg[2] = {-4, 2};
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, PATTN_F32, 2, zero, &t), "shape[1]", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_create(g_ctx, PATTN_F32, 2, neg, &t), "shape[0]", NONE);
  assert_null(t);

  /* absurd sizes: a clean error, never a crash or a wrapped-around small allocation */
  int64_t huge[2] = {(int64_t)1 << 40, (int64_t)1 << 40};
  pattn_status st = pattn_tensor_create(g_ctx, PATTN_F32, 2, huge, &t);
  assert_true(st == PATTN_ERR_INVALID_ARGUMENT || st == PATTN_ERR_OUT_OF_MEMORY);
  assert_null(t);
  assert_true(pattn_last_error(g_ctx)[0] != '\0');
  int64_t wrap[3] = {(int64_t)1 << 31, (int64_t)1 << 31, 4}; /* 2^64 elements: wraps to 0 */
  st = pattn_tensor_create(g_ctx, PATTN_F16, 3, wrap, &t);
  assert_true(st == PATTN_ERR_INVALID_ARGUMENT || st == PATTN_ERR_OUT_OF_MEMORY);
  assert_null(t);
  int64_t big_bytes[1] = {(int64_t)1 << 62}; /* elements fit, bytes overflow */
  st = pattn_tensor_create(g_ctx, PATTN_F32, 1, big_bytes, &t);
  assert_true(st == PATTN_ERR_INVALID_ARGUMENT || st == PATTN_ERR_OUT_OF_MEMORY);
  assert_null(t);

  /* write/read with the wrong byte or element count, NULL buffers, NULL tensor */
  t = mk(g_ctx, PATTN_F16, 3, 2, 3, 4, 0);
  uint16_t buf[64] = {0};
  float fbuf[64] = {0};
  EXPECT_INVALID(g_ctx, pattn_tensor_write(t, buf, 24 * 2 - 1), "bytes", t, NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_write(t, buf, 24 * 2 + 2), "bytes", t, NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_write(t, buf, 24 * 4), "bytes", t, NONE);   /* f32 bytes into f16 */
  EXPECT_INVALID(g_ctx, pattn_tensor_write(t, NULL, 24 * 2), "src", t, NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_write_f32(t, fbuf, 23), "count", t, NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_write_f32(t, NULL, 24), "src", t, NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_read(t, buf, 10), "bytes", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_read(t, NULL, 48), "dst", NONE);
  EXPECT_INVALID(g_ctx, pattn_tensor_read_f32(t, fbuf, 25), "count", NONE);
  EXPECT_INVALID(NULL, pattn_tensor_write(NULL, buf, 48), "NULL", NONE);
  EXPECT_INVALID(NULL, pattn_tensor_read(NULL, buf, 48), "NULL", NONE);
  EXPECT_INVALID(NULL, pattn_tensor_write_f32(NULL, fbuf, 24), "NULL", NONE);
  EXPECT_INVALID(NULL, pattn_tensor_read_f32(NULL, fbuf, 24), "NULL", NONE);
  pattn_tensor_destroy(t);
}

/* ---- dense attention ---- */

static pattn_attention_desc att_desc(void) {
  pattn_attention_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  return d;
}

static void test_attention(void **state) {
  (void)state;
  enum { B = 2, HQ = 4, HKV = 2, NQ = 8, NK = 12, D = 16 };
  pattn_tensor *q = T4(PATTN_F32, B, HQ, NQ, D), *k = T4(PATTN_F32, B, HKV, NK, D), *v = T4(PATTN_F32, B, HKV, NK, D);
  pattn_tensor *out = T4(PATTN_F32, B, HQ, NQ, D), *lse = T3(PATTN_F32, B, HQ, NQ), *mask = T4(PATTN_F32, 1, HQ, NQ, NK);
  pattn_tensor *k3 = T4(PATTN_F32, B, 3, NK, D), *v3 = T4(PATTN_F32, B, 3, NK, D);          /* hq % 3 != 0 */
  pattn_tensor *k_b = T4(PATTN_F32, 1, HKV, NK, D), *k_d = T4(PATTN_F32, B, HKV, NK, D + 1);
  pattn_tensor *v_n = T4(PATTN_F32, B, HKV, NK + 1, D), *v_h = T4(PATTN_F32, B, 1, NK, D);
  pattn_tensor *k16 = T4(PATTN_F16, B, HKV, NK, D), *out16 = T4(PATTN_BF16, B, HQ, NQ, D);
  pattn_tensor *out_n = T4(PATTN_F32, B, HQ, NQ + 1, D), *out_d = T4(PATTN_F32, B, HQ, NQ, D + 1);
  pattn_tensor *out_h = T4(PATTN_F32, B, HKV, NQ, D), *out_b = T4(PATTN_F32, 1, HQ, NQ, D);
  pattn_tensor *q3 = T3(PATTN_F32, B * HQ, NQ, D);
  pattn_tensor *mask_nk = T4(PATTN_F32, 1, 1, NQ, NK + 1), *mask_b = T4(PATTN_F32, 3, 1, NQ, NK);
  pattn_tensor *mask_h = T4(PATTN_F32, 1, 2, NQ, NK), *mask16 = T4(PATTN_F16, 1, 1, NQ, NK), *mask3 = T3(PATTN_F32, HQ, NQ, NK);
  pattn_tensor *lse_n = T3(PATTN_F32, B, HQ, NK), *lse16 = T3(PATTN_F16, B, HQ, NQ), *lse4 = T4(PATTN_F32, B, HQ, NQ, 1);
  pattn_tensor *q_other = mk(g_other, PATTN_F32, 4, B, HQ, NQ, D), *out_other = mk(g_other, PATTN_F32, 4, B, HQ, NQ, D);
  pattn_attention_desc d = att_desc(), bad;

#define ATT(desc_, q_, k_, v_, m_, o_, l_) pattn_attention(g_ctx, desc_, q_, k_, v_, m_, o_, l_)
  EXPECT_INVALID(NULL, pattn_attention(NULL, &d, q, k, v, NULL, out, lse), "ctx", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(NULL, q, k, v, NULL, out, lse), "desc", out, lse, NONE);
  bad = d, bad.struct_size = 0;
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, lse), "struct_size", out, lse, NONE);
  bad = d, bad.struct_size = offsetof(pattn_attention_desc, precision);
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, lse), "struct_size", out, lse, NONE);
  bad = d, bad.layout = (pattn_layout)2;
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, lse), "layout", out, lse, NONE);
  bad = d, bad.scale = -1.0f;
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, lse), "scale", out, lse, NONE);
  bad = d, bad.scale = 0.0f / 0.0f;
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, lse), "scale", out, lse, NONE);
  bad = d, bad.algo = (pattn_algo)3;
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, lse), "algo", out, lse, NONE);
  bad = d, bad.precision = (pattn_precision)7;
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, lse), "precision", out, lse, NONE);

  EXPECT_INVALID(g_ctx, ATT(&d, NULL, k, v, NULL, out, lse), "q", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, NULL, v, NULL, out, lse), "k", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, NULL, NULL, out, lse), "v", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, NULL, lse), "out", lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q3, k, v, NULL, out, lse), "ndim", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k_b, v, NULL, out, lse), "batch", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k_d, v, NULL, out, lse), "head dim", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v_n, NULL, out, lse), "length", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v_h, NULL, out, lse), "heads", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k3, v3, NULL, out, lse), "hkv", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k16, v, NULL, out, lse), "dtype", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, out16, lse), "dtype", out16, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, out_n, lse), "out", out_n, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, out_d, lse), "out", out_d, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, out_h, lse), "out", out_h, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, out_b, lse), "out", out_b, lse, NONE);
  /* BNHD reads the same tensors as [b, n, h, d]: heads and lengths no longer agree */
  bad = d, bad.layout = PATTN_LAYOUT_BNHD;
  EXPECT_INVALID(g_ctx, ATT(&bad, q, k, v, NULL, out, NULL), "", out, NONE);

  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask_nk, out, lse), "mask", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask_b, out, lse), "mask", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask_h, out, lse), "mask", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask16, out, lse), "mask", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask3, out, lse), "mask", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask, out, lse_n), "lse", out, lse_n, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask, out, lse16), "lse", out, lse16, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, mask, out, lse4), "lse", out, lse4, NONE);

  EXPECT_INVALID(g_ctx, ATT(&d, q_other, k, v, NULL, out, lse), "another context", out, lse, NONE);
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, out_other, lse), "another context", out_other, lse, NONE);
  /* an output aliasing an input */
  pattn_tensor *q_as_out = q;
  EXPECT_INVALID(g_ctx, ATT(&d, q, k, v, NULL, q_as_out, lse), "out", lse, NONE);
#undef ATT
  pattn_tensor *all[] = {q, k, v, out, lse, mask, k3, v3, k_b, k_d, v_n, v_h, k16, out16, out_n, out_d, out_h, out_b, q3,
                         mask_nk, mask_b, mask_h, mask16, mask3, lse_n, lse16, lse4, q_other, out_other};
  destroy_all(all, (int)(sizeof all / sizeof *all));
}

static void test_attention_backward(void **state) {
  (void)state;
  enum { B = 1, HQ = 4, HKV = 2, NQ = 8, NK = 8, D = 16 };
  pattn_tensor *q = T4(PATTN_F16, B, HQ, NQ, D), *k = T4(PATTN_F16, B, HKV, NK, D), *v = T4(PATTN_F16, B, HKV, NK, D);
  pattn_tensor *out = T4(PATTN_F16, B, HQ, NQ, D), *dout = T4(PATTN_F16, B, HQ, NQ, D), *lse = T3(PATTN_F32, B, HQ, NQ);
  pattn_tensor *dq = T4(PATTN_F16, B, HQ, NQ, D), *dk = T4(PATTN_F16, B, HKV, NK, D), *dv = T4(PATTN_F16, B, HKV, NK, D);
  pattn_tensor *dq_n = T4(PATTN_F16, B, HQ, NQ + 1, D), *dk_h = T4(PATTN_F16, B, HQ, NK, D), *dv32 = T4(PATTN_F32, B, HKV, NK, D);
  pattn_tensor *dout_d = T4(PATTN_F16, B, HQ, NQ, D + 2), *out32 = T4(PATTN_F32, B, HQ, NQ, D);
  pattn_tensor *lse_h = T3(PATTN_F32, B, HKV, NQ), *lse16 = T3(PATTN_F16, B, HQ, NQ);
  pattn_tensor *dk_other = mk(g_other, PATTN_F16, 4, B, HKV, NK, D);
  pattn_attention_desc d = att_desc(), bad;
#define BWD(desc_, lse_, dout_, dq_, dk_, dv_) pattn_attention_backward(g_ctx, desc_, q, k, v, out, lse_, dout_, dq_, dk_, dv_)
  EXPECT_INVALID(NULL, pattn_attention_backward(NULL, &d, q, k, v, out, lse, dout, dq, dk, dv), "ctx", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(NULL, lse, dout, dq, dk, dv), "desc", dq, dk, dv, NONE);
  bad = d, bad.struct_size = 4;
  EXPECT_INVALID(g_ctx, BWD(&bad, lse, dout, dq, dk, dv), "struct_size", dq, dk, dv, NONE);
  bad = d, bad.layout = (pattn_layout)-1;
  EXPECT_INVALID(g_ctx, BWD(&bad, lse, dout, dq, dk, dv), "layout", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, NULL, dout, dq, dk, dv), "lse", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse_h, dout, dq, dk, dv), "lse", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse16, dout, dq, dk, dv), "lse", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, NULL, dq, dk, dv), "dout", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout_d, dq, dk, dv), "dout", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, NULL, dk, dv), "dq", dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, dq, NULL, dv), "dk", dq, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, dq, dk, NULL), "dv", dq, dk, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, dq_n, dk, dv), "dq", dq_n, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, dq, dk_h, dv), "dk", dq, dk_h, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, dq, dk, dv32), "dv", dq, dk, dv32, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, dq, dk_other, dv), "another context", dq, dk_other, dv, NONE);
  EXPECT_INVALID(g_ctx, pattn_attention_backward(g_ctx, &d, q, k, v, out32, lse, dout, dq, dk, dv), "out", dq, dk, dv, NONE);
  EXPECT_INVALID(g_ctx, BWD(&d, lse, dout, dq, dq, dv), "dk", dq, dv, NONE); /* dq passed as dk: wrong heads */
#undef BWD
  pattn_tensor *all[] = {q, k, v, out, dout, lse, dq, dk, dv, dq_n, dk_h, dv32, dout_d, out32, lse_h, lse16, dk_other};
  destroy_all(all, (int)(sizeof all / sizeof *all));
}

/* ---- dilated ---- */

static pattn_dilated_desc dil_desc(const int64_t *segs, const int64_t *rates, int G) {
  pattn_dilated_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.layout = PATTN_LAYOUT_BNHD;
  d.num_segments = G;
  d.segment_lengths = segs;
  d.dilation_rates = rates;
  return d;
}

static void test_dilated(void **state) {
  (void)state;
  enum { B = 1, N = 16, H = 4, D = 8 };
  pattn_tensor *q = T4(PATTN_BF16, B, N, H, D), *k = T4(PATTN_BF16, B, N, H, D), *v = T4(PATTN_BF16, B, N, H, D);
  pattn_tensor *out = T4(PATTN_BF16, B, N, H, D), *k_n = T4(PATTN_BF16, B, N / 2, H, D), *v_d = T4(PATTN_BF16, B, N, H, 2 * D);
  pattn_tensor *out16 = T4(PATTN_F16, B, N, H, D), *out_h = T4(PATTN_BF16, B, N, H + 1, D);
  pattn_tensor *q2 = T4(PATTN_BF16, B, N, 2, D), *k2 = T4(PATTN_BF16, B, N, 2, D), *v2 = T4(PATTN_BF16, B, N, 2, D);
  pattn_tensor *out2 = T4(PATTN_BF16, B, N, 2, D), *v_other = mk(g_other, PATTN_BF16, 4, B, N, H, D);
  int64_t segs[3] = {4, 8, 16}, rates[3] = {1, 2, 4};
  pattn_dilated_desc d = dil_desc(segs, rates, 3), bad;
  int64_t seg_bad[3] = {4, 5, 16}, seg_zero[3] = {4, 0, 16}, seg_neg[3] = {-4, 8, 16};
  int64_t rate_zero[3] = {1, 0, 4}, rate_neg[3] = {1, 2, -1};

#define DIL(desc_, q_, k_, v_, o_) pattn_dilated_attention(g_ctx, desc_, q_, k_, v_, o_)
  EXPECT_INVALID(NULL, pattn_dilated_attention(NULL, &d, q, k, v, out), "ctx", out, NONE);
  EXPECT_INVALID(g_ctx, DIL(NULL, q, k, v, out), "desc", out, NONE);
  bad = d, bad.struct_size = 0;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "struct_size", out, NONE);
  bad = d, bad.struct_size = offsetof(pattn_dilated_desc, merge);
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "struct_size", out, NONE);
  bad = d, bad.layout = (pattn_layout)9;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "layout", out, NONE);
  bad = d, bad.scale = -2.0f;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "scale", out, NONE);
  bad = d, bad.segment_lengths = seg_bad;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "segment_lengths[1]", out, NONE);
  bad = d, bad.segment_lengths = seg_zero;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "segment_lengths[1]", out, NONE);
  bad = d, bad.segment_lengths = seg_neg;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "segment_lengths[0]", out, NONE);
  bad = d, bad.dilation_rates = rate_zero;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "dilation_rates[1]", out, NONE);
  bad = d, bad.dilation_rates = rate_neg;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "dilation_rates[2]", out, NONE);
  bad = d, bad.segment_lengths = NULL;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "segment_lengths", out, NONE);
  bad = d, bad.dilation_rates = NULL;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "dilation_rates", out, NONE);
  bad = d, bad.num_segments = 0;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "num_segments", out, NONE);
  bad = d, bad.num_segments = -1;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "num_segments", out, NONE);
  bad = d, bad.merge = (pattn_dilated_merge)2;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "merge", out, NONE);
  /* h = 2 < G = 3 */
  EXPECT_INVALID(g_ctx, DIL(&d, q2, k2, v2, out2), "num_segments", out2, NONE);
  /* segment lengths are checked against n of the layout: BHND reads n = H = 4 */
  bad = d, bad.layout = PATTN_LAYOUT_BHND;
  EXPECT_INVALID(g_ctx, DIL(&bad, q, k, v, out), "segment_lengths", out, NONE);

  EXPECT_INVALID(g_ctx, DIL(&d, NULL, k, v, out), "q", out, NONE);
  EXPECT_INVALID(g_ctx, DIL(&d, q, k, v, NULL), "out", NONE);
  EXPECT_INVALID(g_ctx, DIL(&d, q, k_n, v, out), "k", out, NONE);
  EXPECT_INVALID(g_ctx, DIL(&d, q, k, v_d, out), "v", out, NONE);
  EXPECT_INVALID(g_ctx, DIL(&d, q, k, v, out16), "dtype", out16, NONE);
  EXPECT_INVALID(g_ctx, DIL(&d, q, k, v, out_h), "out", out_h, NONE);
  EXPECT_INVALID(g_ctx, DIL(&d, q, k, v_other, out), "another context", out, NONE);

  /* ring_dilated with one context validates the same way */
  bad = d, bad.segment_lengths = seg_bad;
  EXPECT_INVALID(g_ctx, pattn_ring_dilated_attention(g_ctx, &bad, NULL, q, k, v, out), "segment_lengths", out, NONE);
  bad = d, bad.num_segments = 0;
  EXPECT_INVALID(g_ctx, pattn_ring_dilated_attention(g_ctx, &bad, NULL, q, k, v, out), "num_segments", out, NONE);
  EXPECT_INVALID(NULL, pattn_ring_dilated_attention(NULL, &d, NULL, q, k, v, out), "ctx", out, NONE);
#undef DIL
  pattn_tensor *all[] = {q, k, v, out, k_n, v_d, out16, out_h, q2, k2, v2, out2, v_other};
  destroy_all(all, (int)(sizeof all / sizeof *all));
}

/* ---- ring (one context) ---- */

static void test_ring(void **state) {
  (void)state;
  enum { B = 1, H = 2, N = 16, D = 8 };
  pattn_tensor *q = T4(PATTN_F32, B, H, N, D), *k = T4(PATTN_F32, B, H, N, D), *v = T4(PATTN_F32, B, H, N, D);
  pattn_tensor *out = T4(PATTN_F32, B, H, N, D), *lse = T3(PATTN_F32, B, H, N), *lse_b = T3(PATTN_F32, 2, H, N);
  pattn_tensor *lse16 = T3(PATTN_F16, B, H, N), *k3 = T4(PATTN_F32, B, 3, N, D), *v3 = T4(PATTN_F32, B, 3, N, D);
  pattn_tensor *out_d = T4(PATTN_F32, B, H, N, D - 1), *k_other = mk(g_other, PATTN_F32, 4, B, H, N, D);
  pattn_ring_desc d, bad;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.ring_size = 4;
#define RING(desc_, k_, v_, o_, l_) pattn_ring_attention(g_ctx, desc_, NULL, q, k_, v_, o_, l_)
  EXPECT_INVALID(NULL, pattn_ring_attention(NULL, &d, NULL, q, k, v, out, lse), "ctx", out, lse, NONE);
  EXPECT_INVALID(g_ctx, RING(NULL, k, v, out, lse), "desc", out, lse, NONE);
  bad = d, bad.struct_size = 0;
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "struct_size", out, lse, NONE);
  bad = d, bad.struct_size = offsetof(pattn_ring_desc, zigzag);
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "struct_size", out, lse, NONE);
  bad = d, bad.layout = (pattn_layout)3;
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "layout", out, lse, NONE);
  bad = d, bad.scale = -0.5f;
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "scale", out, lse, NONE);
  bad = d, bad.ring_size = 0;
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "ring_size", out, lse, NONE);
  bad = d, bad.ring_size = -4;
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "ring_size", out, lse, NONE);
  bad = d, bad.ring_size = 3;
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "ring_size", out, lse, NONE);
  bad = d, bad.ring_size = 32;
  EXPECT_INVALID(g_ctx, RING(&bad, k, v, out, lse), "ring_size", out, lse, NONE);
  EXPECT_INVALID(g_ctx, RING(&d, k, v, out, lse_b), "lse", out, lse_b, NONE);
  EXPECT_INVALID(g_ctx, RING(&d, k, v, out, lse16), "lse", out, lse16, NONE);
  EXPECT_INVALID(g_ctx, RING(&d, k3, v3, out, lse), "hkv", out, lse, NONE);
  EXPECT_INVALID(g_ctx, RING(&d, k, v, out_d, lse), "out", out_d, lse, NONE);
  EXPECT_INVALID(g_ctx, RING(&d, NULL, v, out, lse), "k", out, lse, NONE);
  EXPECT_INVALID(g_ctx, RING(&d, k_other, v, out, lse), "another context", out, lse, NONE);
#undef RING
  pattn_tensor *all[] = {q, k, v, out, lse, lse_b, lse16, k3, v3, out_d, k_other};
  destroy_all(all, (int)(sizeof all / sizeof *all));
}

/* ---- block-sparse ---- */

static void test_block_sparse(void **state) {
  (void)state;
  enum { B = 1, H = 4, N = 32, D = 8, BS = 8, NB = N / BS };
  pattn_tensor *q = T4(PATTN_F16, B, H, N, D), *k = T4(PATTN_F16, B, H, N, D), *v = T4(PATTN_F16, B, H, N, D);
  pattn_tensor *out = T4(PATTN_F16, B, H, N, D), *k_h = T4(PATTN_F16, B, 2, N, D), *v_h = T4(PATTN_F16, B, 2, N, D);
  pattn_tensor *out32 = T4(PATTN_F32, B, H, N, D), *out_n = T4(PATTN_F16, B, H, N - 1, D);
  pattn_tensor *q_other = mk(g_other, PATTN_F16, 4, B, H, N, D);
  uint8_t lay[H * NB * NB];
  memset(lay, 0, sizeof lay);
  pattn_block_layout_local(lay, NB, NB, 1);
  uint8_t lay_bad[NB * NB];
  memcpy(lay_bad, lay, sizeof lay_bad);
  lay_bad[3] = 2;
  pattn_block_sparse_desc d, bad;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.block_size = BS;
  d.layout_heads = 1;
  d.block_layout = lay;
#define BSA(desc_, q_, k_, v_, o_) pattn_block_sparse_attention(g_ctx, desc_, q_, k_, v_, o_)
  EXPECT_INVALID(NULL, pattn_block_sparse_attention(NULL, &d, q, k, v, out), "ctx", out, NONE);
  EXPECT_INVALID(g_ctx, BSA(NULL, q, k, v, out), "desc", out, NONE);
  bad = d, bad.struct_size = 0;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "struct_size", out, NONE);
  bad = d, bad.struct_size = offsetof(pattn_block_sparse_desc, block_layout);
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "struct_size", out, NONE);
  bad = d, bad.layout = (pattn_layout)5;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "layout", out, NONE);
  bad = d, bad.block_size = 0;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "block_size", out, NONE);
  bad = d, bad.block_size = -8;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "block_size", out, NONE);
  bad = d, bad.layout_heads = 0;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "layout_heads", out, NONE);
  bad = d, bad.layout_heads = 2;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "layout_heads", out, NONE);
  bad = d, bad.layout_heads = H + 1;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "layout_heads", out, NONE);
  bad = d, bad.block_layout = NULL;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "block_layout", out, NONE);
  bad = d, bad.block_layout = lay_bad;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "block_layout", out, NONE);
  bad = d, bad.scale = -1.0f;
  EXPECT_INVALID(g_ctx, BSA(&bad, q, k, v, out), "scale", out, NONE);
  EXPECT_INVALID(g_ctx, BSA(&d, q, k_h, v_h, out), "heads", out, NONE);
  EXPECT_INVALID(g_ctx, BSA(&d, q, k, v, out32), "dtype", out32, NONE);
  EXPECT_INVALID(g_ctx, BSA(&d, q, k, v, out_n), "out", out_n, NONE);
  EXPECT_INVALID(g_ctx, BSA(&d, q, k, NULL, out), "v", out, NONE);
  EXPECT_INVALID(g_ctx, BSA(&d, q_other, k, v, out), "another context", out, NONE);
#undef BSA
  pattn_tensor *all[] = {q, k, v, out, k_h, v_h, out32, out_n, q_other};
  destroy_all(all, (int)(sizeof all / sizeof *all));
}

/* ---- multi-head attention ---- */

static pattn_mha_desc mha_desc(int64_t E, int h, pattn_mha_core core, const void *core_desc) {
  pattn_mha_desc d;
  memset(&d, 0, sizeof d);
  d.struct_size = sizeof d;
  d.embed_dim = E;
  d.num_heads = h;
  d.dtype = PATTN_F32;
  d.bias = 1;
  d.core = core;
  d.core_desc = core_desc;
  return d;
}

static void test_mha(void **state) {
  (void)state;
  enum { B = 1, N = 16, E = 32, H = 4 };
  pattn_attention_desc ad = att_desc();
  int64_t segs[2] = {8, 16}, rates[2] = {1, 2}, seg_bad[2] = {5, 16};
  pattn_dilated_desc dd = dil_desc(segs, rates, 2), dd_bad = dil_desc(seg_bad, rates, 2);
  pattn_ring_desc rd;
  memset(&rd, 0, sizeof rd);
  rd.struct_size = sizeof rd;
  rd.ring_size = 0;
  pattn_mha_desc d = mha_desc(E, H, PATTN_MHA_DENSE, &ad), bad;
  pattn_mha *m = NULL;

  EXPECT_INVALID(NULL, pattn_mha_create(NULL, &d, &m), "ctx", NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, NULL, &m), "desc", NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &d, NULL), "mha", NONE);
  bad = d, bad.struct_size = 0;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "struct_size", NONE);
  bad = d, bad.struct_size = offsetof(pattn_mha_desc, core_desc);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "struct_size", NONE);
  bad = mha_desc(30, 4, PATTN_MHA_DENSE, &ad); /* E % h != 0 */
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "num_heads|embed_dim", NONE);
  bad = d, bad.num_heads = 0;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "num_heads", NONE);
  bad = d, bad.num_heads = -4;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "num_heads", NONE);
  bad = d, bad.embed_dim = 0;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "embed_dim", NONE);
  bad = d, bad.dtype = (pattn_dtype)4;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "dtype", NONE);
  bad = d, bad.core = (pattn_mha_core)9;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "core", NONE);
  bad = d, bad.core_desc = NULL;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "core_desc", NONE);
  bad = mha_desc(E, H, PATTN_MHA_DILATED, NULL);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "core_desc", NONE);
  pattn_dilated_desc dd_G = dil_desc(segs, rates, 2);
  dd_G.num_segments = 0;
  bad = mha_desc(E, H, PATTN_MHA_DILATED, &dd_G);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "num_segments", NONE);
  bad = mha_desc(E, H, PATTN_MHA_RING, &rd);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "ring_size", NONE);
  pattn_block_sparse_desc bd;
  memset(&bd, 0, sizeof bd);
  bd.struct_size = sizeof bd;
  uint8_t lay[16] = {1};
  bd.block_size = 0;
  bd.layout_heads = 1;
  bd.block_layout = lay;
  bad = mha_desc(E, H, PATTN_MHA_BLOCK_SPARSE, &bd);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "block_size", NONE);
  bd.block_size = 8;
  bd.layout_heads = 3;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "layout_heads", NONE);
  bd.layout_heads = 1;
  bd.block_layout = NULL;
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "block_layout", NONE);
  pattn_attention_desc ad_bad = att_desc();
  ad_bad.struct_size = 0;
  bad = mha_desc(E, H, PATTN_MHA_DENSE, &ad_bad);
  EXPECT_INVALID(g_ctx, pattn_mha_create(g_ctx, &bad, &m), "struct_size", NONE);
  assert_null(m);

  /* a valid MHA, then bad weights and bad forward arguments */
  assert_int_equal(pattn_mha_create(g_ctx, &d, &m), PATTN_OK);
  assert_non_null(m);
  float w[E * E];
  memset(w, 0, sizeof w);
  EXPECT_INVALID(g_ctx, pattn_mha_set_weight(m, "q_proj.wieght", w, E * E), "q_proj.wieght", NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_set_weight(m, "sub_ln.weight", w, E), "sub_ln.weight", NONE); /* no sub_ln */
  EXPECT_INVALID(g_ctx, pattn_mha_set_weight(m, "q_norm.weight", w, E), "q_norm.weight", NONE); /* no qk_norm */
  EXPECT_INVALID(g_ctx, pattn_mha_set_weight(m, NULL, w, E * E), "name", NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_set_weight(m, "q_proj.weight", w, E * E - 1), "count", NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_set_weight(m, "out_proj.bias", w, E * E), "count", NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_set_weight(m, "k_proj.weight", NULL, E * E), "src", NONE);
  EXPECT_INVALID(NULL, pattn_mha_set_weight(NULL, "q_proj.weight", w, E * E), "mha", NONE);
  EXPECT_INVALID(NULL, pattn_mha_init_xavier(NULL, 1, 1.0f), "mha", NONE);

  pattn_tensor *x = T3(PATTN_F32, B, N, E), *y = T3(PATTN_F32, B, N, E), *x_e = T3(PATTN_F32, B, N, E + 4);
  pattn_tensor *x16 = T3(PATTN_F16, B, N, E), *y_n = T3(PATTN_F32, B, N + 1, E), *y_b = T3(PATTN_F32, 2, N, E);
  pattn_tensor *x4 = T4(PATTN_F32, B, N, H, E / H), *xkv_b = T3(PATTN_F32, 2, N, E);
  pattn_tensor *x_other = mk(g_other, PATTN_F32, 3, B, N, E, 0);
  EXPECT_INVALID(NULL, pattn_mha_forward(NULL, x, x, y), "mha", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, NULL, x, y), "x_q", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, NULL, y), "x_kv", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, x, NULL), "y", NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x_e, x, y), "x_q", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, x_e, y), "x_kv", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x16, x, y), "x_q", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x4, x, y), "x_q", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, xkv_b, y), "x_kv", y, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, x, y_n), "y", y_n, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, x, y_b), "y", y_b, NONE);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x_other, x, y), "another context", y, NONE);
  pattn_mha_destroy(m);

  /* a dilated MHA whose segments do not divide the sequence it is given (n is known only
   * at forward) */
  m = NULL;
  d = mha_desc(E, H, PATTN_MHA_DILATED, &dd);
  assert_int_equal(pattn_mha_create(g_ctx, &d, &m), PATTN_OK);
  pattn_tensor *x_odd = T3(PATTN_F32, B, N + 4, E), *y_odd = T3(PATTN_F32, B, N + 4, E);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x_odd, x_odd, y_odd), "segment_lengths", y_odd, NONE);
  pattn_mha_destroy(m);
  m = NULL;
  d = mha_desc(E, H, PATTN_MHA_DILATED, &dd_bad);
  if (pattn_mha_create(g_ctx, &d, &m) == PATTN_OK) /* may be refused already here */
    EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, x, y), "segment_lengths", y, NONE);
  pattn_mha_destroy(m);
  /* a ring MHA whose ring size does not divide the key length */
  m = NULL;
  rd.ring_size = 3;
  d = mha_desc(E, H, PATTN_MHA_RING, &rd);
  assert_int_equal(pattn_mha_create(g_ctx, &d, &m), PATTN_OK);
  EXPECT_INVALID(g_ctx, pattn_mha_forward(m, x, x, y), "ring_size", y, NONE);
  pattn_mha_destroy(m);
  pattn_tensor *all[] = {x, y, x_e, x16, y_n, y_b, x4, xkv_b, x_other, x_odd, y_odd};
  destroy_all(all, (int)(sizeof all / sizeof *all));
}

/* ---- md_lrpe_cosine ---- */

static void test_lrpe(void **state) {
  (void)state;
  /* x [1, 2, 13, 8], grid 3 x 4 + 1 extra token, e = next_pow2(ceil(8/2)) = 4 */
  enum { B = 1, H = 2, N = 13, D = 8, E = 4 };
  int64_t shape[2] = {3, 4}, shape_bad[2] = {3, 3}, shape_zero[2] = {3, 0};
  const int64_t extra = 1;
  pattn_tensor *x = T4(PATTN_F16, B, H, N, D), *theta = T2(PATTN_F32, H, E), *out = T4(PATTN_F16, B, H, N, 2 * D);
  pattn_tensor *cache = T3(PATTN_F32, H, N, D), *dx = T4(PATTN_F16, B, H, N, D), *dout = T4(PATTN_F16, B, H, N, 2 * D);
  pattn_tensor *theta_e = T2(PATTN_F32, H, 2 * E), *theta_h = T2(PATTN_F32, H + 1, E), *theta1 = mk(g_ctx, PATTN_F32, 1, H * E, 0, 0, 0);
  pattn_tensor *out_d = T4(PATTN_F16, B, H, N, D), *out_n = T4(PATTN_F16, B, H, N + 1, 2 * D), *out32 = T4(PATTN_F32, B, H, N, 2 * D);
  pattn_tensor *cache_n = T3(PATTN_F32, H, N - 1, D), *cache16 = T3(PATTN_F16, H, N, D);
  pattn_tensor *dx_d = T4(PATTN_F16, B, H, N, D + 1), *dout_h = T4(PATTN_F16, B, 1, N, 2 * D), *x3 = T3(PATTN_F16, H, N, D);
  pattn_tensor *theta_other = mk(g_other, PATTN_F32, 2, H, E, 0, 0);

#define FWD(x_, th_, nd_, sh_, ex_, o_, c_) pattn_md_lrpe_cosine_forward(g_ctx, x_, th_, nd_, sh_, ex_, o_, c_)
#define BWD(do_, th_, nd_, sh_, ex_, c_, dx_) pattn_md_lrpe_cosine_backward(g_ctx, do_, th_, nd_, sh_, ex_, c_, dx_)
  EXPECT_INVALID(NULL, pattn_md_lrpe_cosine_forward(NULL, x, theta, 2, shape, extra, out, cache), "ctx", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 0, shape, extra, out, cache), "ndims", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 9, shape, extra, out, cache), "ndims", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, -1, shape, extra, out, cache), "ndims", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, NULL, extra, out, cache), "shape", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape_bad, extra, out, cache), "extra_tokens", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, 0, out, cache), "extra_tokens", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, 2, out, cache), "extra_tokens", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, -1, out, cache), "extra_tokens", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape_zero, extra, out, cache), "shape[1]", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 1, shape, extra, out, cache), "", out, cache, NONE); /* grid 3 + 1 != 13 */
  EXPECT_INVALID(g_ctx, FWD(x, theta_e, 2, shape, extra, out, cache), "theta", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta_h, 2, shape, extra, out, cache), "theta", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta1, 2, shape, extra, out, cache), "theta", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, NULL, 2, shape, extra, out, cache), "theta", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(NULL, theta, 2, shape, extra, out, cache), "x", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x3, theta, 2, shape, extra, out, cache), "x", out, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, extra, NULL, cache), "out", cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, extra, out_d, cache), "out", out_d, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, extra, out_n, cache), "out", out_n, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, extra, out32, cache), "out", out32, cache, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, extra, out, cache_n), "angle_cache", out, cache_n, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta, 2, shape, extra, out, cache16), "angle_cache", out, cache16, NONE);
  EXPECT_INVALID(g_ctx, FWD(x, theta_other, 2, shape, extra, out, cache), "another context", out, cache, NONE);

  EXPECT_INVALID(NULL, pattn_md_lrpe_cosine_backward(NULL, dout, theta, 2, shape, extra, cache, dx), "ctx", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 0, shape, extra, cache, dx), "ndims", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 9, shape, extra, cache, dx), "ndims", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 2, shape_bad, extra, cache, dx), "extra_tokens", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 2, shape, -3, cache, dx), "extra_tokens", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta_e, 2, shape, extra, cache, dx), "theta", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta_h, 2, shape, extra, NULL, dx), "theta", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 2, shape, extra, cache_n, dx), "angle_cache", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 2, shape, extra, cache16, dx), "angle_cache", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout_h, theta, 2, shape, extra, cache, dx), "dout", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(out32, theta, 2, shape, extra, cache, dx), "dout", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 2, shape, extra, cache, dx_d), "", dx_d, NONE);
  EXPECT_INVALID(g_ctx, BWD(NULL, theta, 2, shape, extra, cache, dx), "dout", dx, NONE);
  EXPECT_INVALID(g_ctx, BWD(dout, theta, 2, shape, extra, cache, NULL), "dx", NONE);
#undef FWD
#undef BWD
  pattn_tensor *all[] = {x, theta, out, cache, dx, dout, theta_e, theta_h, theta1, out_d, out_n, out32, cache_n, cache16,
                         dx_d, dout_h, x3, theta_other};
  destroy_all(all, (int)(sizeof all / sizeof *all));
}

/* ---- driver ---- */

static int setup(void **state) {
  (void)state;
  pattn_status st;
  g_ctx = tu_context("cpu", 0, &st);
  g_other = tu_context("cpu", 0, &st);
  return g_ctx && g_other ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  pattn_context_destroy(g_ctx);
  pattn_context_destroy(g_other);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_context),  cmocka_unit_test(test_tensor),       cmocka_unit_test(test_attention),
      cmocka_unit_test(test_attention_backward), cmocka_unit_test(test_dilated), cmocka_unit_test(test_ring),
      cmocka_unit_test(test_block_sparse), cmocka_unit_test(test_mha),      cmocka_unit_test(test_lrpe),
  };
  return cmocka_run_group_tests_name("errors", tests, setup, teardown);
}

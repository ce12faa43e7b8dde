/* The public API around the operators: options and contexts, environment variables,
 * tensors and their dtype conversions (hand-computed bit patterns), memory statistics,
 * versions, status strings, backends_available, and the block-layout builders of SPEC.md
 * section 4 (hand-checked small grids). Tensor tests run on both CPU modes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pattn_config.h" /* the version Meson configured */
#include "ref_naive.h"
#include "testing.h"
#include "test_util.h"

/* ---- options, contexts, environment ---- */
static void test_options_default(void **state) {
  (void)state;
  pattn_options o;
  memset(&o, 0xab, sizeof o);
  pattn_options_default(&o);
  assert_int_equal(o.struct_size, sizeof o);
  assert_null(o.backend);
  assert_null(o.device);
  assert_int_equal(o.num_threads, 0);
  assert_int_equal(o.cpu_reference, -1);
}

static void test_context_cpu(void **state) {
  (void)state;
  for (int ref = 0; ref < 2; ref++) {
    pattn_status st;
    pattn_context *ctx = tu_context("cpu", ref, &st);
    assert_int_equal(st, PATTN_OK);
    assert_non_null(ctx);
    assert_string_equal(pattn_context_backend(ctx), "cpu");
    assert_non_null(pattn_context_device(ctx));
    assert_true(strlen(pattn_context_device(ctx)) > 0);
    assert_string_equal(pattn_last_error(ctx), ""); /* no failure yet */
    assert_int_equal(pattn_synchronize(ctx), PATTN_OK);
    pattn_context_destroy(ctx);
  }
  pattn_context_destroy(NULL); /* NULL ok */
  /* explicit thread counts */
  for (int threads = 1; threads <= 3; threads++) {
    pattn_options o;
    pattn_options_default(&o);
    o.backend = "cpu";
    o.num_threads = threads;
    pattn_context *ctx = NULL;
    assert_int_equal(pattn_context_create(&ctx, &o), PATTN_OK);
    pattn_context_destroy(ctx);
  }
}

static void test_context_unknown_backend(void **state) {
  (void)state;
  pattn_options o;
  pattn_options_default(&o);
  o.backend = "no-such-backend";
  pattn_context *ctx = NULL;
  pattn_status st = pattn_context_create(&ctx, &o);
  assert_int_not_equal(st, PATTN_OK);
  assert_null(ctx);
  assert_true(strlen(pattn_last_error(NULL)) > 0); /* the thread's creation error */
}

/* An options struct from an older ABI (struct_size not covering cpu_reference) works and
 * the field beyond it is not read. */
static void test_options_old_struct_size(void **state) {
  (void)state;
  pattn_options o;
  pattn_options_default(&o);
  o.struct_size = offsetof(pattn_options, cpu_reference);
  o.backend = "cpu";
  o.cpu_reference = 12345; /* garbage the library must not look at */
  pattn_context *ctx = NULL;
  assert_int_equal(pattn_context_create(&ctx, &o), PATTN_OK);
  assert_string_equal(pattn_context_backend(ctx), "cpu");
  pattn_context_destroy(ctx);
}

/* "No call prints": with PATTN_LOG unset, nothing reaches stdout or stderr, even for
 * failing calls. */
static void test_no_printing(void **state) {
  (void)state;
  char *saved = getenv("PATTN_LOG") ? strdup(getenv("PATTN_LOG")) : NULL;
  unsetenv("PATTN_LOG");
  char path[] = "/tmp/pattn-test-output-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  fflush(stdout);
  fflush(stderr);
  int out_fd = dup(1), err_fd = dup(2);
  assert_true(out_fd >= 0 && err_fd >= 0);
  assert_true(dup2(fd, 1) >= 0 && dup2(fd, 2) >= 0);

  pattn_options o;
  pattn_options_default(&o);
  o.backend = "cpu";
  pattn_context *ctx = NULL, *bad = NULL;
  pattn_status st_ok = pattn_context_create(&ctx, &o);
  o.backend = "no-such-backend";
  pattn_status st_bad = pattn_context_create(&bad, &o);
  int64_t s[4] = {1, 1, 4, 8}, s2[4] = {1, 1, 4, 9};
  pattn_tensor *a = NULL, *b = NULL;
  pattn_status st_t = ctx ? pattn_tensor_create(ctx, PATTN_F32, 4, s, &a) : PATTN_ERR_BACKEND;
  if (ctx) pattn_tensor_create(ctx, PATTN_F32, 4, s2, &b);
  pattn_attention_desc d = {.struct_size = sizeof d};
  pattn_status st_op = ctx ? pattn_attention(ctx, &d, a, b, b, NULL, a, NULL) : PATTN_OK;
  pattn_tensor_destroy(a);
  pattn_tensor_destroy(b);
  pattn_context_destroy(ctx);

  fflush(stdout);
  fflush(stderr);
  dup2(out_fd, 1);
  dup2(err_fd, 2);
  close(out_fd);
  close(err_fd);
  off_t size = lseek(fd, 0, SEEK_END);
  close(fd);
  unlink(path);
  if (saved) setenv("PATTN_LOG", saved, 1);
  free(saved);
  assert_int_equal(st_ok, PATTN_OK);
  assert_int_not_equal(st_bad, PATTN_OK);
  assert_int_equal(st_t, PATTN_OK);
  assert_int_equal(st_op, PATTN_ERR_INVALID_ARGUMENT); /* dk 8 vs 9 */
  assert_int_equal(size, 0);
}

/* Restores an environment variable on scope exit by hand (tests are single-threaded). */
static char *save_env(const char *name) {
  const char *v = getenv(name);
  return v ? strdup(v) : NULL;
}
static void restore_env(const char *name, char *saved) {
  if (saved) setenv(name, saved, 1);
  else unsetenv(name);
  free(saved);
}

static void test_env_backend(void **state) {
  (void)state;
  char *saved = save_env("PATTN_BACKEND");
  pattn_context *ctx = NULL;
  /* NULL options: $PATTN_BACKEND decides */
  setenv("PATTN_BACKEND", "cpu", 1);
  assert_int_equal(pattn_context_create(&ctx, NULL), PATTN_OK);
  assert_string_equal(pattn_context_backend(ctx), "cpu");
  pattn_context_destroy(ctx);
  ctx = NULL;
  /* an unknown name from the environment fails, with a message */
  setenv("PATTN_BACKEND", "no-such-backend", 1);
  assert_int_not_equal(pattn_context_create(&ctx, NULL), PATTN_OK);
  assert_null(ctx);
  assert_true(strlen(pattn_last_error(NULL)) > 0);
  /* explicit options win over the environment */
  pattn_options o;
  pattn_options_default(&o);
  o.backend = "cpu";
  assert_int_equal(pattn_context_create(&ctx, &o), PATTN_OK);
  assert_string_equal(pattn_context_backend(ctx), "cpu");
  pattn_context_destroy(ctx);
  ctx = NULL;
  /* "auto" always finds something (the CPU at worst) */
  unsetenv("PATTN_BACKEND");
  o.backend = "auto";
  assert_int_equal(pattn_context_create(&ctx, &o), PATTN_OK);
  assert_non_null(pattn_context_backend(ctx));
  pattn_context_destroy(ctx);
  restore_env("PATTN_BACKEND", saved);
}

static void test_env_threads_and_mode(void **state) {
  (void)state;
  char *saved_t = save_env("PATTN_NUM_THREADS"), *saved_r = save_env("PATTN_CPU_REFERENCE");
  setenv("PATTN_NUM_THREADS", "1", 1);
  setenv("PATTN_CPU_REFERENCE", "1", 1);
  pattn_options o;
  pattn_options_default(&o);
  o.backend = "cpu";
  pattn_context *ctx = NULL;
  assert_int_equal(pattn_context_create(&ctx, &o), PATTN_OK);
  /* the context works in the mode the environment chose */
  int64_t s[4] = {1, 1, 3, 2};
  const float x[6] = {1, 2, 3, 4, 5, 6};
  pattn_tensor *t = NULL, *o2 = NULL;
  assert_int_equal(pattn_tensor_create(ctx, PATTN_F32, 4, s, &t), PATTN_OK);
  assert_int_equal(pattn_tensor_create(ctx, PATTN_F32, 4, s, &o2), PATTN_OK);
  assert_int_equal(pattn_tensor_write_f32(t, x, 6), PATTN_OK);
  pattn_attention_desc d = {.struct_size = sizeof d};
  assert_int_equal(pattn_attention(ctx, &d, t, t, t, NULL, o2, NULL), PATTN_OK);
  float y[6];
  assert_int_equal(pattn_tensor_read_f32(o2, y, 6), PATTN_OK);
  for (int i = 0; i < 6; i++) assert_true(isfinite(y[i]));
  pattn_tensor_destroy(t);
  pattn_tensor_destroy(o2);
  pattn_context_destroy(ctx);
  restore_env("PATTN_NUM_THREADS", saved_t);
  restore_env("PATTN_CPU_REFERENCE", saved_r);
}

/* ---- tensors ---- */
static void test_tensor_metadata(void **state) {
  (void)state;
  const pattn_dtype dts[3] = {PATTN_F32, PATTN_F16, PATTN_BF16};
  const size_t sizes[3] = {4, 2, 2};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(pattn_dtype_size(dts[i]), sizes[i]);
    int64_t shape[3] = {2, 3, 5};
    pattn_tensor *t = NULL;
    assert_int_equal(pattn_tensor_create(g_ctx, dts[i], 3, shape, &t), PATTN_OK);
    assert_int_equal(pattn_tensor_dtype(t), dts[i]);
    assert_int_equal(pattn_tensor_ndim(t), 3);
    for (int k = 0; k < 3; k++) assert_int_equal(pattn_tensor_dim(t, k), shape[k]);
    assert_int_equal(pattn_tensor_dim(t, 3), -1);
    assert_int_equal(pattn_tensor_dim(t, -1), -1);
    assert_int_equal(pattn_tensor_bytes(t), 30 * sizes[i]);
    pattn_tensor_destroy(t);
  }
  assert_int_equal(pattn_dtype_size((pattn_dtype)7), 0);
  /* PATTN_MAX_DIMS dims work */
  int64_t eight[PATTN_MAX_DIMS] = {1, 2, 1, 2, 1, 2, 1, 3};
  pattn_tensor *t = NULL;
  assert_int_equal(pattn_tensor_create(g_ctx, PATTN_F32, PATTN_MAX_DIMS, eight, &t), PATTN_OK);
  assert_int_equal(pattn_tensor_bytes(t), 24 * 4);
  pattn_tensor_destroy(t);
  pattn_tensor_destroy(NULL); /* NULL ok */
}

static pattn_tensor *vec(pattn_dtype dt, int64_t n) {
  pattn_tensor *t = NULL;
  assert_int_equal(pattn_tensor_create(g_ctx, dt, 1, &n, &t), PATTN_OK);
  return t;
}

static void test_tensor_roundtrip(void **state) {
  (void)state;
  /* raw bytes come back bit-exact in every dtype */
  uint8_t raw[64], back[64];
  for (int i = 0; i < 64; i++) raw[i] = (uint8_t)(i * 37 + 11);
  const pattn_dtype dts[3] = {PATTN_F32, PATTN_F16, PATTN_BF16};
  for (int i = 0; i < 3; i++) {
    pattn_tensor *t = vec(dts[i], (int64_t)(64 / pattn_dtype_size(dts[i])));
    assert_int_equal(pattn_tensor_write(t, raw, 64), PATTN_OK);
    memset(back, 0, sizeof back);
    assert_int_equal(pattn_tensor_read(t, back, 64), PATTN_OK);
    assert_memory_equal(raw, back, 64);
    /* sizes must match exactly */
    assert_int_equal(pattn_tensor_write(t, raw, 63), PATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(pattn_tensor_read(t, back, 65), PATTN_ERR_INVALID_ARGUMENT);
    size_t n = 64 / pattn_dtype_size(dts[i]);
    float f[64] = {0};
    assert_int_equal(pattn_tensor_write_f32(t, f, n + 1), PATTN_ERR_INVALID_ARGUMENT);
    assert_int_equal(pattn_tensor_read_f32(t, f, n - 1), PATTN_ERR_INVALID_ARGUMENT);
    assert_memory_equal(raw, back, 64); /* a failed read wrote nothing... */
    assert_int_equal(pattn_tensor_read(t, back, 64), PATTN_OK);
    assert_memory_equal(raw, back, 64); /* ...and a failed write changed nothing */
    pattn_tensor_destroy(t);
  }
  /* f32 values survive write_f32/read_f32 exactly, including inf, -0 and subnormals */
  const float vals[6] = {1.5f, -0.0f, INFINITY, -INFINITY, 1e-40f, 3.4028235e38f};
  pattn_tensor *t = vec(PATTN_F32, 6);
  float got[6];
  assert_int_equal(pattn_tensor_write_f32(t, vals, 6), PATTN_OK);
  assert_int_equal(pattn_tensor_read_f32(t, got, 6), PATTN_OK);
  assert_memory_equal(vals, got, sizeof vals);
  pattn_tensor_destroy(t);
}

/* f32 -> f16/bf16 conversions round to nearest even; bit patterns worked out by hand. */
static void test_conversions(void **state) {
  (void)state;
  const float f16_in[] = {
      1.0f, 1.0f + 0x1p-11f /* tie, even stays */, 1.0f + 3 * 0x1p-11f /* tie, rounds up to even */,
      1.0f + 0x1p-11f + 0x1p-20f /* above the tie */, 65504.0f, 65519.0f, 65520.0f /* overflows */,
      1e6f, -INFINITY, 0x1p-24f /* smallest subnormal */, 0x1p-25f /* tie with 0 */,
      3 * 0x1p-25f /* 1.5 ulp: tie, even */, 0x1p-14f /* smallest normal */, -0.0f, -2.0f, 0.1f};
  const uint16_t f16_want[] = {0x3C00, 0x3C00, 0x3C02, 0x3C01, 0x7BFF, 0x7BFF, 0x7C00, 0x7C00,
                               0xFC00, 0x0001, 0x0000, 0x0002, 0x0400, 0x8000, 0xC000, 0x2E66};
  const size_t nf = sizeof f16_want / sizeof f16_want[0];
  pattn_tensor *t = vec(PATTN_F16, (int64_t)nf);
  uint16_t bits[16];
  assert_int_equal(pattn_tensor_write_f32(t, f16_in, nf), PATTN_OK);
  assert_int_equal(pattn_tensor_read(t, bits, nf * 2), PATTN_OK);
  for (size_t i = 0; i < nf; i++)
    if (bits[i] != f16_want[i]) fail_msg("f16(%a) = 0x%04x, expected 0x%04x", (double)f16_in[i], bits[i], f16_want[i]);
  /* NaN stays NaN */
  const float nan1 = NAN;
  pattn_tensor *t1 = vec(PATTN_F16, 1);
  assert_int_equal(pattn_tensor_write_f32(t1, &nan1, 1), PATTN_OK);
  assert_int_equal(pattn_tensor_read(t1, bits, 2), PATTN_OK);
  assert_true((bits[0] & 0x7C00) == 0x7C00 && (bits[0] & 0x03FF) != 0);
  /* f16 -> f32 is exact */
  const uint16_t f16_bits[] = {0x3555, 0x0001, 0x7C00, 0xFBFF, 0x8000, 0x03FF};
  const float f16_val[] = {0.333251953125f, 0x1p-24f, INFINITY, -65504.0f, -0.0f, 1023 * 0x1p-24f};
  pattn_tensor *t6 = vec(PATTN_F16, 6);
  float back[16];
  assert_int_equal(pattn_tensor_write(t6, f16_bits, sizeof f16_bits), PATTN_OK);
  assert_int_equal(pattn_tensor_read_f32(t6, back, 6), PATTN_OK);
  assert_memory_equal(back, f16_val, sizeof f16_val);

  const float bf_in[] = {1.0f, 1.0f + 0x1p-8f /* tie */, 1.0f + 3 * 0x1p-8f /* tie, up */, -2.5f,
                         3.0e38f, 3.4028235e38f /* rounds up to inf */, 1e-40f /* subnormal */,
                         INFINITY, -0.0f};
  const uint16_t bf_want[] = {0x3F80, 0x3F80, 0x3F82, 0xC020, 0x7F62, 0x7F80, 0x0001, 0x7F80, 0x8000};
  const size_t nb = sizeof bf_want / sizeof bf_want[0];
  pattn_tensor *tb = vec(PATTN_BF16, (int64_t)nb);
  assert_int_equal(pattn_tensor_write_f32(tb, bf_in, nb), PATTN_OK);
  assert_int_equal(pattn_tensor_read(tb, bits, nb * 2), PATTN_OK);
  for (size_t i = 0; i < nb; i++)
    if (bits[i] != bf_want[i]) fail_msg("bf16(%a) = 0x%04x, expected 0x%04x", (double)bf_in[i], bits[i], bf_want[i]);
  pattn_tensor *tb1 = vec(PATTN_BF16, 1);
  assert_int_equal(pattn_tensor_write_f32(tb1, &nan1, 1), PATTN_OK);
  assert_int_equal(pattn_tensor_read(tb1, bits, 2), PATTN_OK);
  assert_true((bits[0] & 0x7F80) == 0x7F80 && (bits[0] & 0x007F) != 0);
  const uint16_t bf_bits[2] = {0x4049, 0xBF80};
  const float bf_val[2] = {3.140625f, -1.0f};
  pattn_tensor *tb2 = vec(PATTN_BF16, 2);
  assert_int_equal(pattn_tensor_write(tb2, bf_bits, 4), PATTN_OK);
  assert_int_equal(pattn_tensor_read_f32(tb2, back, 2), PATTN_OK);
  assert_memory_equal(back, bf_val, sizeof bf_val);
  pattn_tensor_destroy(t); pattn_tensor_destroy(t1); pattn_tensor_destroy(t6);
  pattn_tensor_destroy(tb); pattn_tensor_destroy(tb1); pattn_tensor_destroy(tb2);
}

/* The driver's own memory count: the CPU backend has none to give (UNSUPPORTED, with a
 * message), and a NULL output is refused before any backend is asked. */
static void test_device_memory(void **state) {
  (void)state;
  size_t free_b = 7, total_b = 7;
  assert_int_equal(pattn_device_memory(g_ctx, NULL, &total_b), PATTN_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(pattn_last_error(g_ctx), "free_bytes"));
  assert_int_equal(pattn_device_memory(NULL, &free_b, &total_b), PATTN_ERR_INVALID_ARGUMENT);
  assert_int_equal(pattn_device_memory(g_ctx, &free_b, &total_b), PATTN_ERR_UNSUPPORTED);
  assert_non_null(strstr(pattn_last_error(g_ctx), "cpu"));
  assert_int_equal(free_b, 7); /* outputs untouched */
  assert_int_equal(total_b, 7);
}

/* Events: the time between two recorded events spans the work enqueued between them, is
 * never negative, and events of different contexts cannot be compared. */
static void test_events(void **state) {
  (void)state;
  int64_t shape[4] = {1, 2, 64, 16};
  float *x = calloc(2 * 64 * 16, sizeof(float));
  assert_non_null(x);
  pattn_tensor *t = tu_tensor(g_ctx, PATTN_F32, 4, shape, x), *o = tu_tensor(g_ctx, PATTN_F32, 4, shape, NULL);
  pattn_event *a = NULL, *b = NULL, *other = NULL;
  assert_int_equal(pattn_event_record(g_ctx, &a), PATTN_OK);
  pattn_attention_desc desc = {.struct_size = sizeof desc};
  assert_int_equal(pattn_attention(g_ctx, &desc, t, t, t, NULL, o, NULL), PATTN_OK);
  assert_int_equal(pattn_event_record(g_ctx, &b), PATTN_OK);
  double ms = -1;
  assert_int_equal(pattn_event_elapsed(a, b, &ms), PATTN_OK);
  assert_true(ms >= 0.0 && ms < 60e3);
  assert_int_equal(pattn_event_elapsed(a, b, NULL), PATTN_ERR_INVALID_ARGUMENT);
  assert_int_equal(pattn_event_elapsed(NULL, b, &ms), PATTN_ERR_INVALID_ARGUMENT);
  assert_int_equal(pattn_event_record(g_ctx, NULL), PATTN_ERR_INVALID_ARGUMENT);
  pattn_status st;
  pattn_context *c2 = tu_context("cpu", 0, &st);
  assert_non_null(c2);
  assert_int_equal(pattn_event_record(c2, &other), PATTN_OK);
  assert_int_equal(pattn_event_elapsed(a, other, &ms), PATTN_ERR_INVALID_ARGUMENT);
  assert_non_null(strstr(pattn_last_error(g_ctx), "different contexts"));
  pattn_event_destroy(a);
  pattn_event_destroy(b);
  pattn_event_destroy(other);
  pattn_event_destroy(NULL);
  pattn_context_destroy(c2);
  pattn_tensor_destroy(t);
  pattn_tensor_destroy(o);
  free(x);
}

/* pattn_tensor_fill on ctx: every element of an f32, f16 and bf16 tensor becomes the value
 * rounded to the dtype (1/3: 0x3eaaaaab, 0x3555, 0x3eab), and nothing past the tensor moves. */
static void fill_on(pattn_context *ctx, const char *name) {
  const pattn_dtype dts[3] = {PATTN_F32, PATTN_F16, PATTN_BF16};
  const uint32_t want[3] = {0x3eaaaaabu, 0x3555u, 0x3eabu};
  int64_t shape[3] = {3, 5, 67}; /* 1005 elements: no multiple of any vector width */
  for (int i = 0; i < 3; i++) {
    pattn_testing_set_guard_bytes(ctx, 256);
    pattn_tensor *t = NULL;
    assert_int_equal(pattn_tensor_create(ctx, dts[i], 3, shape, &t), PATTN_OK);
    assert_int_equal(pattn_tensor_fill(t, 1.0f / 3.0f), PATTN_OK);
    uint8_t raw[1005 * 4];
    size_t es = pattn_dtype_size(dts[i]);
    assert_int_equal(pattn_tensor_read(t, raw, 1005 * es), PATTN_OK);
    for (int j = 0; j < 1005; j++) {
      uint32_t bits = 0;
      memcpy(&bits, raw + (size_t)j * es, es);
      if (bits != want[i]) fail_msg("%s: dtype %d element %d is 0x%x, not 0x%x", name, (int)dts[i], j, bits, want[i]);
    }
    assert_true(pattn_testing_guards_intact(t));
    /* -inf is a value like any other (the merges fill with it) */
    assert_int_equal(pattn_tensor_fill(t, -INFINITY), PATTN_OK);
    float f[1005];
    assert_int_equal(pattn_tensor_read_f32(t, f, 1005), PATTN_OK);
    for (int j = 0; j < 1005; j++) assert_true(isinf(f[j]) && f[j] < 0);
    pattn_tensor_destroy(t);
  }
  assert_int_equal(pattn_tensor_fill(NULL, 0.0f), PATTN_ERR_INVALID_ARGUMENT);
}

static void test_tensor_fill(void **state) {
  (void)state;
  fill_on(g_ctx, "cpu");
  /* and on every other backend this build has a device for */
  const char *names[8];
  int count = 8;
  assert_int_equal(pattn_backends_available(names, &count), PATTN_OK);
  for (int i = 0; i < count; i++) {
    if (!strcmp(names[i], "cpu")) continue;
    pattn_status st;
    pattn_context *c = tu_context(names[i], 0, &st);
    if (!c) continue; /* listed but no device: the backends' own tests cover that */
    fill_on(c, names[i]);
    pattn_context_destroy(c);
  }
}

static void test_memory_stats(void **state) {
  (void)state;
  size_t in0 = 0, peak0 = 0, in1 = 0, peak1 = 0, in2 = 0, peak2 = 0;
  assert_int_equal(pattn_memory_stats(g_ctx, &in0, &peak0), PATTN_OK);
  assert_true(peak0 >= in0);
  pattn_tensor *t = vec(PATTN_F32, 100000);
  assert_int_equal(pattn_memory_stats(g_ctx, &in1, &peak1), PATTN_OK);
  assert_true(in1 >= in0 + 400000);
  assert_true(peak1 >= in1);
  pattn_tensor *t2 = vec(PATTN_F16, 50000);
  size_t in_both = 0, peak_both = 0;
  assert_int_equal(pattn_memory_stats(g_ctx, &in_both, &peak_both), PATTN_OK);
  assert_true(in_both >= in1 + 100000);
  pattn_tensor_destroy(t);
  pattn_tensor_destroy(t2);
  assert_int_equal(pattn_memory_stats(g_ctx, &in2, &peak2), PATTN_OK);
  assert_int_equal(in2, in0);     /* everything given back */
  assert_true(peak2 >= in_both);  /* the peak remembers */
  pattn_memory_reset_peak(g_ctx);
  assert_int_equal(pattn_memory_stats(g_ctx, &in2, &peak2), PATTN_OK);
  assert_int_equal(peak2, in2);
}

/* ---- versions, status strings, backends ---- */
static void test_version(void **state) {
  (void)state;
  const char *v = pattn_version();
  assert_non_null(v);
  assert_string_equal(v, PATTN_VERSION);
  unsigned M, m, p;
  char tail;
  assert_int_equal(sscanf(v, "%u.%u.%u%c", &M, &m, &p, &tail), 3);
  assert_int_equal(pattn_version_api(), (M << 16) | (m << 8) | p);
  assert_int_equal(M, PATTN_VERSION_MAJOR);
  assert_int_equal(m, PATTN_VERSION_MINOR);
  assert_int_equal(p, PATTN_VERSION_PATCH);
}

static void test_status_strings(void **state) {
  (void)state;
  const char *s[8];
  for (int i = 0; i < 8; i++) {
    s[i] = pattn_status_string((pattn_status)-i);
    assert_non_null(s[i]);
    assert_true(strlen(s[i]) > 0);
    for (int j = 0; j < i; j++) assert_string_not_equal(s[i], s[j]);
  }
  const char *u = pattn_status_string((pattn_status)42);
  assert_non_null(u);
  assert_true(strlen(u) > 0);
  assert_non_null(pattn_status_string((pattn_status)-100));
}

static void test_backends_available(void **state) {
  (void)state;
  const char *names[8] = {0};
  int count = 8;
  assert_int_equal(pattn_backends_available(names, &count), PATTN_OK);
  assert_true(count >= 1 && count <= 3);
  int have_cpu = 0;
  for (int i = 0; i < count; i++) {
    assert_non_null(names[i]);
    assert_true(!strcmp(names[i], "cpu") || !strcmp(names[i], "opencl") || !strcmp(names[i], "cuda"));
    if (!strcmp(names[i], "cpu")) have_cpu = 1;
    for (int j = 0; j < i; j++) assert_string_not_equal(names[i], names[j]);
  }
  assert_true(have_cpu);
  /* a capacity below the number found: INVALID_ARGUMENT with the number needed */
  const char *few[1];
  int cap = count - 1;
  assert_int_equal(pattn_backends_available(few, &cap), PATTN_ERR_INVALID_ARGUMENT);
  assert_int_equal(cap, count);
  /* listed exactly when there is no reason why not */
  const char *all[3] = {"cpu", "opencl", "cuda"};
  for (int i = 0; i < 3; i++) {
    int listed = 0;
    for (int j = 0; j < count; j++) listed |= !strcmp(names[j], all[i]);
    const char *why = pattn_backend_unavailable_reason(all[i]);
    assert_non_null(why);
    if (listed) assert_string_equal(why, "");
    else assert_true(strlen(why) > 0);
  }
}

/* ---- block-layout builders (SPEC.md section 4) ---- */
#define GUARD 16
/* A grid with guard bytes behind it: builders must write exactly nqb*nkb bytes. */
static uint8_t *grid(int nqb, int nkb) {
  uint8_t *g = malloc((size_t)(nqb * nkb + GUARD));
  assert_non_null(g);
  memset(g, 0, (size_t)(nqb * nkb));
  memset(g + nqb * nkb, 0x5a, GUARD);
  return g;
}
static void expect_grid(const char *what, uint8_t *g, const char *rows, int nqb, int nkb) {
  /* rows: nqb strings of nkb '0'/'1' concatenated */
  for (int i = 0; i < nqb * nkb; i++)
    if (g[i] != (uint8_t)(rows[i] - '0'))
      fail_msg("%s: block (%d, %d) is %d, expected %c", what, i / nkb, i % nkb, g[i], rows[i]);
  for (int i = 0; i < GUARD; i++)
    if (g[nqb * nkb + i] != 0x5a) fail_msg("%s: wrote past the grid", what);
  free(g);
}

static void test_layout_local(void **state) {
  (void)state;
  uint8_t *g = grid(4, 5); /* |I - J| <= 1 */
  pattn_block_layout_local(g, 4, 5, 1);
  expect_grid("local w=1", g, "11000" "11100" "01110" "00111", 4, 5);
  g = grid(3, 3);
  pattn_block_layout_local(g, 3, 3, 0);
  expect_grid("local w=0", g, "100" "010" "001", 3, 3);
  g = grid(3, 3); /* OR with what is there */
  g[2] = 1;
  pattn_block_layout_local(g, 3, 3, 0);
  expect_grid("local OR", g, "101" "010" "001", 3, 3);
}

static void test_layout_dilated(void **state) {
  (void)state;
  uint8_t *g = grid(6, 6); /* J = I, I +- 2, I +- 3 */
  const int rates[2] = {2, 3};
  pattn_block_layout_dilated(g, 6, 6, 2, rates);
  expect_grid("dilated {2,3}", g, "101100" "010110" "101011" "110101" "011010" "001101", 6, 6);
  g = grid(2, 4);
  const int r1[1] = {1};
  g[3] = 1;
  pattn_block_layout_dilated(g, 2, 4, 1, r1);
  expect_grid("dilated {1} OR", g, "1101" "1110", 2, 4);
}

static void test_layout_global(void **state) {
  (void)state;
  uint8_t *g = grid(4, 5);
  pattn_block_layout_global(g, 4, 5, 1);
  expect_grid("global 1", g, "11111" "10000" "10000" "10000", 4, 5);
  g = grid(4, 4);
  pattn_block_layout_global(g, 4, 4, 2);
  expect_grid("global 2", g, "1111" "1111" "1100" "1100", 4, 4);
  g = grid(3, 3); /* OR with a local window */
  pattn_block_layout_local(g, 3, 3, 0);
  pattn_block_layout_global(g, 3, 3, 1);
  expect_grid("global OR local", g, "111" "110" "101", 3, 3);
}

static void test_layout_causal(void **state) {
  (void)state;
  uint8_t *g = grid(3, 3);
  memset(g, 1, 9);
  pattn_block_layout_causal(g, 3, 3);
  expect_grid("causal of full", g, "100" "110" "111", 3, 3);
  g = grid(4, 4); /* AND with local window 1 */
  pattn_block_layout_local(g, 4, 4, 1);
  pattn_block_layout_causal(g, 4, 4);
  expect_grid("causal of local", g, "1000" "1100" "0110" "0011", 4, 4);
}

static void test_layout_random(void **state) {
  (void)state;
  const int nb = 64;
  uint8_t *a = grid(nb, nb), *b = grid(nb, nb), *c = grid(nb, nb);
  pattn_block_layout_random(a, nb, nb, 0.3, 42);
  pattn_block_layout_random(b, nb, nb, 0.3, 42);
  pattn_block_layout_random(c, nb, nb, 0.3, 43);
  assert_memory_equal(a, b, (size_t)(nb * nb)); /* deterministic for a seed */
  assert_memory_not_equal(a, c, (size_t)(nb * nb));
  int ones = 0;
  for (int i = 0; i < nb * nb; i++) {
    assert_true(a[i] == 0 || a[i] == 1);
    ones += a[i];
  }
  /* fraction p within 4 standard errors (sqrt(0.21 / 4096) = 0.0072) */
  assert_true(fabs(ones / (double)(nb * nb) - 0.3) < 0.029);
  for (int i = 0; i < GUARD; i++) assert_int_equal(a[nb * nb + i], 0x5a);
  free(a); free(b); free(c);
  /* p = 0 adds nothing, p = 1 sets everything; both OR */
  uint8_t *z = grid(3, 4);
  z[5] = 1;
  pattn_block_layout_random(z, 3, 4, 0.0, 1);
  expect_grid("random p=0", z, "0000" "0100" "0000", 3, 4);
  z = grid(3, 4);
  pattn_block_layout_random(z, 3, 4, 1.0, 1);
  expect_grid("random p=1", z, "1111" "1111" "1111", 3, 4);
  /* OR: bits set before survive */
  uint8_t *o = grid(nb, nb);
  memset(o, 1, (size_t)nb); /* row 0 */
  pattn_block_layout_random(o, nb, nb, 0.3, 42);
  for (int j = 0; j < nb; j++) assert_int_equal(o[j], 1);
  free(o);
}

int main(void) {
  const struct CMUnitTest once[] = {
      cmocka_unit_test(test_options_default),       cmocka_unit_test(test_context_cpu),
      cmocka_unit_test(test_context_unknown_backend), cmocka_unit_test(test_env_backend),
      cmocka_unit_test(test_env_threads_and_mode),  cmocka_unit_test(test_version),
      cmocka_unit_test(test_status_strings),        cmocka_unit_test(test_backends_available),
      cmocka_unit_test(test_layout_local),          cmocka_unit_test(test_layout_dilated),
      cmocka_unit_test(test_layout_global),         cmocka_unit_test(test_layout_causal),
      cmocka_unit_test(test_layout_random),         cmocka_unit_test(test_options_old_struct_size),
      cmocka_unit_test(test_no_printing),
  };
  const struct CMUnitTest per_mode[] = {
      cmocka_unit_test(test_tensor_metadata), cmocka_unit_test(test_tensor_roundtrip),
      cmocka_unit_test(test_conversions),     cmocka_unit_test(test_memory_stats),
      cmocka_unit_test(test_device_memory),     cmocka_unit_test(test_events),
      cmocka_unit_test(test_tensor_fill),
  };
  int fails = cmocka_run_group_tests_name("api", once, NULL, NULL);
  fails += REF_RUN_BOTH_MODES("tensors", per_mode);
  return fails ? 1 : 0;
}

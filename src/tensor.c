/* Tensors: dense row-major device memory owned by a context, optional guard bands for the
 * conformance suite, and views of tensors for the operators. */
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "internal.h"
#include "testing.h"

#define GUARD_BYTE 0xA5
#define MAX_TENSOR_BYTES ((size_t)1 << 50) /* 1 PiB: anything larger is a mistake, not a request */

size_t pattn_dtype_size(pattn_dtype dt) { return pattn_dtype_bytes(dt); }

static pattn_status tensor_create(pattn_context *ctx, pattn_dtype dt, int ndim, const int64_t *shape,
                                  size_t guard, pattn_tensor **out) {
  size_t es = pattn_dtype_bytes(dt);
  if (!es) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "tensor_create: dtype=%d is not a pattn_dtype", (int)dt);
  if (ndim < 1 || ndim > PATTN_MAX_DIMS)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "tensor_create: ndim=%d is outside 1..%d", ndim, PATTN_MAX_DIMS);
  if (!shape) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "tensor_create: shape is NULL");
  uint64_t numel = 1, bytes;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 1)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "tensor_create: shape[%d]=%lld must be >= 1", i, (long long)shape[i]);
    if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel))
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "tensor_create: shape overflows 64-bit element count at shape[%d]", i);
  }
  if (__builtin_mul_overflow(numel, (uint64_t)es, &bytes) || bytes > MAX_TENSOR_BYTES)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "tensor_create: shape needs %llu elements, more than pattn allows (1 PiB)",
                        (unsigned long long)numel);
  pattn_tensor *t = calloc(1, sizeof *t);
  if (!t) return pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "tensor_create: out of host memory");
  t->ctx = ctx;
  t->dtype = dt;
  t->ndim = ndim;
  memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  t->numel = (int64_t)numel;
  t->bytes = (size_t)bytes;
  t->byte_offset = guard;
  t->alloc_bytes = (size_t)bytes + 2 * guard;
  pattn_status st = pattn__alloc(ctx, t->alloc_bytes, &t->buf);
  if (st != PATTN_OK) {
    free(t);
    return st;
  }
  if (guard) {
    unsigned char *pat = malloc(guard);
    if (!pat) {
      pattn__free(ctx, t->buf, t->alloc_bytes);
      free(t);
      return pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "tensor_create: out of host memory");
    }
    memset(pat, GUARD_BYTE, guard);
    st = ctx->be->buf_write(ctx, t->buf, 0, pat, guard);
    if (st == PATTN_OK) st = ctx->be->buf_write(ctx, t->buf, guard + t->bytes, pat, guard);
    free(pat);
    if (st != PATTN_OK) {
      pattn__free(ctx, t->buf, t->alloc_bytes);
      free(t);
      return st;
    }
  }
  *out = t;
  return PATTN_OK;
}

pattn_status pattn_tensor_create(pattn_context *ctx, pattn_dtype dt, int ndim, const int64_t *shape, pattn_tensor **t) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st != PATTN_OK) return st;
  if (!t) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "tensor_create: t (the output pointer) is NULL");
  return tensor_create(ctx, dt, ndim, shape, ctx->guard_bytes, t);
}

pattn_status pattn__temp(pattn_context *ctx, pattn_dtype dt, int ndim, const int64_t *shape, pattn_tensor **t) {
  return tensor_create(ctx, dt, ndim, shape, 0, t);
}

void pattn_tensor_destroy(pattn_tensor *t) {
  if (!t) return;
  pattn__free(t->ctx, t->buf, t->alloc_bytes);
  free(t);
}

static pattn_status check_io(const pattn_tensor *t, const void *p, size_t n, size_t want, const char *op,
                             const char *pname, const char *unit) {
  if (!t) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "%s: t is NULL", op);
  if (!p) return pattn__error(t->ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, pname);
  if (n != want)
    return pattn__error(t->ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s=%zu does not match the tensor's %zu %s", op,
                        !strcmp(unit, "bytes") ? "bytes" : "count", n, want, unit);
  return PATTN_OK;
}

pattn_status pattn_tensor_write(pattn_tensor *t, const void *src, size_t bytes) {
  pattn_status st = check_io(t, src, bytes, t ? t->bytes : 0, "tensor_write", "src", "bytes");
  if (st != PATTN_OK) return st;
  return t->ctx->be->buf_write(t->ctx, t->buf, t->byte_offset, src, bytes);
}

pattn_status pattn_tensor_read(const pattn_tensor *t, void *dst, size_t bytes) {
  pattn_status st = check_io(t, dst, bytes, t ? t->bytes : 0, "tensor_read", "dst", "bytes");
  if (st != PATTN_OK) return st;
  return t->ctx->be->buf_read(t->ctx, t->buf, t->byte_offset, dst, bytes);
}

pattn_status pattn_tensor_write_f32(pattn_tensor *t, const float *src, size_t count) {
  pattn_status st = check_io(t, src, count, t ? (size_t)t->numel : 0, "tensor_write_f32", "src", "elements");
  if (st != PATTN_OK) return st;
  if (t->dtype == PATTN_F32) return t->ctx->be->buf_write(t->ctx, t->buf, t->byte_offset, src, t->bytes);
  uint16_t *tmp = malloc(t->bytes);
  if (!tmp) return pattn__error(t->ctx, PATTN_ERR_OUT_OF_MEMORY, "tensor_write_f32: out of host memory for conversion");
  for (size_t i = 0; i < count; i++) pattn_store(tmp, t->dtype, (int64_t)i, src[i]);
  st = t->ctx->be->buf_write(t->ctx, t->buf, t->byte_offset, tmp, t->bytes);
  free(tmp);
  return st;
}

pattn_status pattn_tensor_read_f32(const pattn_tensor *t, float *dst, size_t count) {
  pattn_status st = check_io(t, dst, count, t ? (size_t)t->numel : 0, "tensor_read_f32", "dst", "elements");
  if (st != PATTN_OK) return st;
  if (t->dtype == PATTN_F32) return t->ctx->be->buf_read(t->ctx, t->buf, t->byte_offset, dst, t->bytes);
  uint16_t *tmp = malloc(t->bytes);
  if (!tmp) return pattn__error(t->ctx, PATTN_ERR_OUT_OF_MEMORY, "tensor_read_f32: out of host memory for conversion");
  st = t->ctx->be->buf_read(t->ctx, t->buf, t->byte_offset, tmp, t->bytes);
  if (st == PATTN_OK)
    for (size_t i = 0; i < count; i++) dst[i] = pattn_load(tmp, t->dtype, (int64_t)i);
  free(tmp);
  return st;
}

pattn_status pattn_tensor_fill(pattn_tensor *t, float value) {
  if (!t) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "tensor_fill: t is NULL");
  if (t->numel == 0) return PATTN_OK;
  /* the elements as rows of the last extent: one dense view the backends' fill walks */
  pattn_view v;
  memset(&v, 0, sizeof v);
  v.buf = t->buf;
  v.dtype = t->dtype;
  v.offset = (int64_t)(t->byte_offset / pattn_dtype_bytes(t->dtype));
  v.nb = v.ns = v.nh = 1;
  v.d = t->ndim > 0 ? t->shape[t->ndim - 1] : 1;
  v.n = t->numel / v.d;
  v.sn = v.d;
  v.sh = v.ss = v.sb = v.n * v.d;
  return t->ctx->be->fill(t->ctx, &v, value);
}

pattn_dtype pattn_tensor_dtype(const pattn_tensor *t) { return t ? t->dtype : PATTN_F32; }
int pattn_tensor_ndim(const pattn_tensor *t) { return t ? t->ndim : 0; }
int64_t pattn_tensor_dim(const pattn_tensor *t, int i) { return (t && i >= 0 && i < t->ndim) ? t->shape[i] : -1; }
size_t pattn_tensor_bytes(const pattn_tensor *t) { return t ? t->bytes : 0; }

void pattn__dims4(const pattn_tensor *t, pattn_layout layout, int64_t *b, int64_t *h, int64_t *n, int64_t *d) {
  *b = t->shape[0];
  *h = layout == PATTN_LAYOUT_BNHD ? t->shape[2] : t->shape[1];
  *n = layout == PATTN_LAYOUT_BNHD ? t->shape[1] : t->shape[2];
  *d = t->shape[3];
}

pattn_view pattn__view4(const pattn_tensor *t, pattn_layout layout) {
  pattn_view v;
  memset(&v, 0, sizeof v);
  v.buf = t->buf;
  v.dtype = t->dtype;
  v.offset = (int64_t)(t->byte_offset / pattn_dtype_bytes(t->dtype));
  pattn__dims4(t, layout, &v.nb, &v.nh, &v.n, &v.d);
  v.ns = 1;
  v.ss = 0;
  v.sb = t->shape[1] * t->shape[2] * t->shape[3];
  if (layout == PATTN_LAYOUT_BNHD) {
    v.sn = t->shape[2] * t->shape[3];
    v.sh = t->shape[3];
  } else {
    v.sh = t->shape[2] * t->shape[3];
    v.sn = t->shape[3];
  }
  return v;
}

pattn_mat pattn__mat(const pattn_tensor *t) {
  pattn_mat m = {t->buf, t->dtype, (int64_t)(t->byte_offset / pattn_dtype_bytes(t->dtype))};
  return m;
}

void pattn_testing_set_guard_bytes(pattn_context *ctx, size_t bytes) {
  if (ctx) ctx->guard_bytes = (bytes + 255) / 256 * 256;
}

int pattn_testing_guards_intact(const pattn_tensor *t) {
  if (!t) return 0;
  size_t g = t->byte_offset;
  if (!g) return 1;
  unsigned char *buf = malloc(g);
  if (!buf) return 0;
  int ok = 1;
  for (int side = 0; side < 2 && ok; side++) {
    size_t off = side ? g + t->bytes : 0;
    if (t->ctx->be->buf_read(t->ctx, t->buf, off, buf, g) != PATTN_OK) ok = 0;
    for (size_t i = 0; ok && i < g; i++) ok = buf[i] == GUARD_BYTE;
  }
  free(buf);
  return ok;
}

/* Argument checks shared by every operator: each failure names the argument and why, and
 * returns PATTN_ERR_INVALID_ARGUMENT before anything is enqueued. */
#include <math.h>

#include "internal.h"

static const char *const dtype_names[] = {"f32", "f16", "bf16"};

pattn_status pattn__check_ctx(pattn_context *ctx) {
  if (!ctx) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!ctx->be) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "ctx is not an open context");
  return PATTN_OK;
}

pattn_status pattn__check_desc(pattn_context *ctx, const char *op, const void *desc, size_t struct_size, size_t min_size) {
  if (!desc) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: desc is NULL", op);
  if (struct_size < min_size)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                        "%s: desc->struct_size=%zu is smaller than the descriptor (%zu): zero-initialise it and set struct_size = sizeof",
                        op, struct_size, min_size);
  return PATTN_OK;
}

pattn_status pattn__check_tensor(pattn_context *ctx, const char *op, const char *name, const pattn_tensor *t, int ndim) {
  if (!t) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s is NULL", op, name);
  if (t->ctx != ctx) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s belongs to another context", op, name);
  if (ndim && t->ndim != ndim)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s has ndim=%d, expected %d", op, name, t->ndim, ndim);
  return PATTN_OK;
}

pattn_status pattn__check_same_dtype(pattn_context *ctx, const char *op, const char *name, const pattn_tensor *t, pattn_dtype dt) {
  if (t->dtype != dt)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s has dtype %s, expected %s", op, name,
                        dtype_names[t->dtype], dtype_names[dt]);
  return PATTN_OK;
}

pattn_status pattn__check_layout(pattn_context *ctx, const char *op, pattn_layout layout) {
  if (layout != PATTN_LAYOUT_BHND && layout != PATTN_LAYOUT_BNHD)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: desc->layout=%d is not BHND (0) or BNHD (1)", op, (int)layout);
  return PATTN_OK;
}

pattn_status pattn__check_scale(pattn_context *ctx, const char *op, float scale) {
  if (!isfinite(scale) || scale < 0)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: desc->scale=%g must be 0 (default 1/sqrt(d)) or positive", op,
                        (double)scale);
  return PATTN_OK;
}

pattn_status pattn__check_dim(pattn_context *ctx, const char *op, const char *name, const char *what, int64_t got, int64_t want) {
  if (got != want)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s has %s=%lld, expected %lld", op, name, what, (long long)got,
                        (long long)want);
  return PATTN_OK;
}

pattn_status pattn__check_distinct(pattn_context *ctx, const char *op, const pattn_tensor *const *outs, const char *const *out_names,
                                   int nout, const pattn_tensor *const *all, const char *const *all_names, int nall) {
  for (int i = 0; i < nout; i++) {
    if (!outs[i]) continue;
    for (int j = 0; j < nall; j++)
      if (all[j] && all[j] == outs[i] && out_names[i] != all_names[j])
        return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s is the same tensor as %s (outputs may not alias)", op,
                            out_names[i], all_names[j]);
  }
  return PATTN_OK;
}

pattn_status pattn__check_op_desc(pattn_context *ctx, const char *op, const void *desc, size_t struct_size, size_t min_size,
                                  pattn_layout layout, float scale) {
  pattn_status st = pattn__check_desc(ctx, op, desc, struct_size, min_size);
  if (st == PATTN_OK) st = pattn__check_layout(ctx, op, layout);
  if (st == PATTN_OK) st = pattn__check_scale(ctx, op, scale);
  return st;
}

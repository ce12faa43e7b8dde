/* Multi-dimensional LRPE cosine (SPEC.md section 6). */
#include <string.h>

#include "internal.h"

static int64_t next_pow2(int64_t x) {
  int64_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

/* Shared by forward and backward: x-like [b,h,n,d] (forward input / backward output),
 * the doubled tensor [b,h,n,2d], theta [h,e], the grid and the optional angle cache. */
static pattn_status check_lrpe(pattn_context *ctx, const char *op, const pattn_tensor *x, const char *xname, const pattn_tensor *x2,
                               const char *x2name, const pattn_tensor *theta, int ndims, const int64_t *shape, int64_t extra,
                               const pattn_tensor *cache, pattn_lrpe_args *a) {
  pattn_status st = pattn__check_tensor(ctx, op, xname, x, 4);
  if (st == PATTN_OK) st = pattn__check_tensor(ctx, op, x2name, x2, 4);
  if (st == PATTN_OK) st = pattn__check_tensor(ctx, op, "theta", theta, 2);
  if (st == PATTN_OK) st = pattn__check_same_dtype(ctx, op, x2name, x2, x->dtype);
  if (st != PATTN_OK) return st;
  if (ndims < 1 || ndims > 8) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: ndims=%d is outside 1..8", op, ndims);
  if (!shape) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: shape is NULL", op);
  if (extra < 0)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: extra_tokens=%lld must be >= 0", op, (long long)extra);
  int64_t b = x->shape[0], h = x->shape[1], n = x->shape[2], d = x->shape[3], N = 1;
  for (int i = 0; i < ndims; i++) {
    if (shape[i] < 1)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: shape[%d]=%lld must be >= 1", op, i, (long long)shape[i]);
    if (__builtin_mul_overflow(N, shape[i], &N) || N > n)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: the grid shape[0..%d] has more positions than n=%lld", op, i,
                          (long long)n);
  }
  if (N + extra != n)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                        "%s: n=%lld must equal extra_tokens + prod(shape) = %lld + %lld", op, (long long)n, (long long)extra,
                        (long long)N);
  int64_t e = next_pow2((d + ndims - 1) / ndims);
  if (theta->shape[0] != h || theta->shape[1] != e)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                        "%s: theta has shape [%lld, %lld], expected [h, next_pow2(ceil(d/ndims))] = [%lld, %lld]", op,
                        (long long)theta->shape[0], (long long)theta->shape[1], (long long)h, (long long)e);
  if (x2->shape[0] != b || x2->shape[1] != h || x2->shape[2] != n || x2->shape[3] != 2 * d)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s has shape [%lld, %lld, %lld, %lld], expected [b, h, n, 2d] = [%lld, %lld, %lld, %lld]",
                        op, x2name, (long long)x2->shape[0], (long long)x2->shape[1], (long long)x2->shape[2], (long long)x2->shape[3],
                        (long long)b, (long long)h, (long long)n, (long long)(2 * d));
  if (cache) {
    if ((st = pattn__check_tensor(ctx, op, "angle_cache", cache, 3)) ||
        (st = pattn__check_same_dtype(ctx, op, "angle_cache", cache, PATTN_F32)))
      return st;
    if (cache->shape[0] != h || cache->shape[1] != n || cache->shape[2] != d)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: angle_cache has shape [%lld, %lld, %lld], expected [h, n, d] = [%lld, %lld, %lld]",
                          op, (long long)cache->shape[0], (long long)cache->shape[1], (long long)cache->shape[2], (long long)h,
                          (long long)n, (long long)d);
  }
  memset(a, 0, sizeof *a);
  a->theta = pattn__mat(theta);
  if (cache) a->cache = pattn__mat(cache);
  a->b = b, a->h = h, a->n = n, a->d = d, a->e = e, a->ndims = ndims, a->extra_tokens = extra;
  memcpy(a->shape, shape, (size_t)ndims * sizeof *shape);
  return PATTN_OK;
}

pattn_status pattn_md_lrpe_cosine_forward(pattn_context *ctx, const pattn_tensor *x, const pattn_tensor *theta, int ndims,
                                          const int64_t *shape, int64_t extra_tokens, pattn_tensor *out, pattn_tensor *angle_cache) {
  const char *op = "md_lrpe_cosine_forward";
  pattn_lrpe_args a;
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = check_lrpe(ctx, op, x, "x", out, "out", theta, ndims, shape, extra_tokens, angle_cache, &a);
  if (st != PATTN_OK) return st;
  const pattn_tensor *outs[] = {out, angle_cache};
  const char *onames[] = {"out", "angle_cache"};
  const pattn_tensor *all[] = {x, theta, out, angle_cache};
  const char *anames[] = {"x", "theta", "out", "angle_cache"};
  if ((st = pattn__check_distinct(ctx, op, outs, onames, 2, all, anames, 4))) return st;
  a.in = pattn__mat(x);
  a.out = pattn__mat(out);
  return ctx->be->lrpe_forward(ctx, &a);
}

pattn_status pattn_md_lrpe_cosine_backward(pattn_context *ctx, const pattn_tensor *dout, const pattn_tensor *theta, int ndims,
                                           const int64_t *shape, int64_t extra_tokens, const pattn_tensor *angle_cache,
                                           pattn_tensor *dx) {
  const char *op = "md_lrpe_cosine_backward";
  pattn_lrpe_args a;
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = check_lrpe(ctx, op, dx, "dx", dout, "dout", theta, ndims, shape, extra_tokens, angle_cache, &a);
  if (st != PATTN_OK) return st;
  const pattn_tensor *outs[] = {dx};
  const char *onames[] = {"dx"};
  const pattn_tensor *all[] = {dout, theta, angle_cache, dx};
  const char *anames[] = {"dout", "theta", "angle_cache", "dx"};
  if ((st = pattn__check_distinct(ctx, op, outs, onames, 1, all, anames, 4))) return st;
  a.in = pattn__mat(dout);
  a.out = pattn__mat(dx);
  return ctx->be->lrpe_backward(ctx, &a);
}

/* Block-sparse attention (SPEC.md section 4): one softmax over each row's active blocks. */
#include "internal.h"

#define OP "block_sparse_attention"

pattn_status pattn__validate_block_sparse(pattn_context *ctx, const char *op, const pattn_block_sparse_desc *desc, int64_t h,
                                          int64_t nq, int64_t nk) {
  pattn_status st = PATTN_CHECK_OP_DESC(ctx, op, desc);
  if (st != PATTN_OK) return st;
  if (desc->block_size < 1)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: block_size=%d must be >= 1", op, desc->block_size);
  if (desc->layout_heads != 1 && desc->layout_heads != h)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: layout_heads=%d must be 1 (shared) or h=%lld", op, desc->layout_heads,
                        (long long)h);
  if (!desc->block_layout) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: block_layout is NULL", op);
  int64_t B = desc->block_size, nqb = (nq + B - 1) / B, nkb = (nk + B - 1) / B, cells = desc->layout_heads * nqb * nkb;
  for (int64_t i = 0; i < cells; i++)
    if (desc->block_layout[i] > 1)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: block_layout[%lld]=%u is not 0 or 1", op, (long long)i,
                          desc->block_layout[i]);
  return PATTN_OK;
}

pattn_status pattn__run_block_sparse(pattn_context *ctx, const pattn_block_sparse_desc *desc, float scale, const pattn_view *q,
                                     const pattn_view *k, const pattn_view *v, const pattn_view *out) {
  int64_t B = desc->block_size;
  pattn_block_sparse_args a = {*q, *k, *v, *out, scale, desc->causal != 0, k->n - q->n, desc->block_size, desc->layout_heads,
                               (q->n + B - 1) / B, (k->n + B - 1) / B, desc->block_layout};
  return ctx->be->block_sparse(ctx, &a);
}

/* q [b,h,nq,d], k [b,h,nk,d], v [b,h,nk,dv], out [b,h,nq,dv] in layout. */
pattn_status pattn_block_sparse_attention(pattn_context *ctx, const pattn_block_sparse_desc *desc, const pattn_tensor *q,
                                          const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = PATTN_CHECK_OP_DESC(ctx, OP, desc);
  if (st == PATTN_OK) st = pattn__check_qkvo(ctx, OP, desc->layout, q, k, v, out, "out");
  if (st != PATTN_OK) return st;
  int64_t b, h, nq, d, kb, hk, nk, kd;
  pattn__dims4(q, desc->layout, &b, &h, &nq, &d);
  pattn__dims4(k, desc->layout, &kb, &hk, &nk, &kd);
  if (hk != h)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: k has %lld heads, expected q's %lld (no GQA in block-sparse)", OP,
                        (long long)hk, (long long)h);
  if ((st = pattn__validate_block_sparse(ctx, OP, desc, h, nq, nk))) return st;
  const pattn_tensor *outs[] = {out};
  const char *onames[] = {"out"};
  const pattn_tensor *all[] = {q, k, v, out};
  const char *anames[] = {"q", "k", "v", "out"};
  if ((st = pattn__check_distinct(ctx, OP, outs, onames, 1, all, anames, 4))) return st;
  pattn_view qv = pattn__view4(q, desc->layout), kv = pattn__view4(k, desc->layout), vv = pattn__view4(v, desc->layout),
             ov = pattn__view4(out, desc->layout);
  return pattn__run_block_sparse(ctx, desc, pattn__resolve_scale(desc->scale, d), &qv, &kv, &vv, &ov);
}

/* Dense attention, forward and backward (SPEC.md section 1). */
#include <math.h>

#include "internal.h"

#define OP "attention"
#define OPB "attention_backward"

pattn_status pattn__validate_attention_desc(pattn_context *ctx, const char *op, const pattn_attention_desc *desc) {
  pattn_status st = PATTN_CHECK_OP_DESC(ctx, op, desc);
  if (st == PATTN_OK && (desc->algo < PATTN_ALGO_AUTO || desc->algo > PATTN_ALGO_FLASH))
    st = pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: desc->algo=%d is not AUTO, NAIVE or FLASH", op, (int)desc->algo);
  if (st == PATTN_OK && (desc->precision < PATTN_PRECISION_DEFAULT || desc->precision > PATTN_PRECISION_TF32))
    st = pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: desc->precision=%d is not DEFAULT or TF32", op, (int)desc->precision);
  return st;
}

/* q [b,hq,nq,dk], k [b,hkv,nk,dk], v [b,hkv,nk,dv], out [b,hq,nq,dv] in layout; same dtype. */
pattn_status pattn__check_qkvo(pattn_context *ctx, const char *op, pattn_layout layout, const pattn_tensor *q, const pattn_tensor *k,
                               const pattn_tensor *v, const pattn_tensor *out, const char *out_name) {
  pattn_status st = pattn__check_tensor(ctx, op, "q", q, 4);
  if (st == PATTN_OK) st = pattn__check_tensor(ctx, op, "k", k, 4);
  if (st == PATTN_OK) st = pattn__check_tensor(ctx, op, "v", v, 4);
  if (st == PATTN_OK) st = pattn__check_tensor(ctx, op, out_name, out, 4);
  if (st != PATTN_OK) return st;
  if ((st = pattn__check_same_dtype(ctx, op, "k", k, q->dtype)) || (st = pattn__check_same_dtype(ctx, op, "v", v, q->dtype)) ||
      (st = pattn__check_same_dtype(ctx, op, out_name, out, q->dtype)))
    return st;
  int64_t b, hq, nq, dk, kb, hkv, nk, kd, vb, vh, vn, dv, ob, oh, on, od;
  pattn__dims4(q, layout, &b, &hq, &nq, &dk);
  pattn__dims4(k, layout, &kb, &hkv, &nk, &kd);
  pattn__dims4(v, layout, &vb, &vh, &vn, &dv);
  pattn__dims4(out, layout, &ob, &oh, &on, &od);
  if ((st = pattn__check_dim(ctx, op, "k", "batch", kb, b)) || (st = pattn__check_dim(ctx, op, "v", "batch", vb, b)) ||
      (st = pattn__check_dim(ctx, op, "k", "head dim", kd, dk)) || (st = pattn__check_dim(ctx, op, "v", "heads", vh, hkv)) ||
      (st = pattn__check_dim(ctx, op, "v", "length", vn, nk)))
    return st;
  if (hq % hkv)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: q heads hq=%lld is not a multiple of k/v heads hkv=%lld", op,
                        (long long)hq, (long long)hkv);
  if ((st = pattn__check_dim(ctx, op, out_name, "batch", ob, b)) || (st = pattn__check_dim(ctx, op, out_name, "heads", oh, hq)) ||
      (st = pattn__check_dim(ctx, op, out_name, "length", on, nq)) || (st = pattn__check_dim(ctx, op, out_name, "head dim", od, dv)))
    return st;
  return PATTN_OK;
}

/* lse: f32 [b, hq, nq] whatever the layout. */
pattn_status pattn__check_lse(pattn_context *ctx, const char *op, const pattn_tensor *lse, int64_t b, int64_t hq, int64_t nq) {
  pattn_status st = pattn__check_tensor(ctx, op, "lse", lse, 3);
  if (st == PATTN_OK) st = pattn__check_same_dtype(ctx, op, "lse", lse, PATTN_F32);
  if (st == PATTN_OK && (lse->shape[0] != b || lse->shape[1] != hq || lse->shape[2] != nq))
    st = pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: lse has shape [%lld, %lld, %lld], expected [b, hq, nq] = [%lld, %lld, %lld]",
                      op, (long long)lse->shape[0], (long long)lse->shape[1], (long long)lse->shape[2], (long long)b, (long long)hq,
                      (long long)nq);
  return st;
}

pattn_view pattn__lse_view(const pattn_tensor *lse) {
  pattn_view v = {lse->buf, PATTN_F32, (int64_t)(lse->byte_offset / 4), lse->shape[0], 1, lse->shape[1], lse->shape[2], 1,
                  lse->shape[1] * lse->shape[2], 0, lse->shape[2], 1};
  return v;
}

pattn_status pattn__run_attention(pattn_context *ctx, const pattn_attention_desc *desc, float scale, const pattn_view *q,
                                  const pattn_view *k, const pattn_view *v, const pattn_view *mask, const pattn_view *out,
                                  const pattn_view *lse) {
  pattn_attn_args a = {*q, *k, *v, *out, mask, lse, scale, desc->causal != 0, k->n - q->n, 1.0f, desc->algo, desc->precision};
  return ctx->be->attention(ctx, &a);
}

pattn_status pattn_attention(pattn_context *ctx, const pattn_attention_desc *desc, const pattn_tensor *q, const pattn_tensor *k,
                             const pattn_tensor *v, const pattn_tensor *mask, pattn_tensor *out, pattn_tensor *lse) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = pattn__validate_attention_desc(ctx, OP, desc);
  if (st == PATTN_OK) st = pattn__check_qkvo(ctx, OP, desc->layout, q, k, v, out, "out");
  if (st != PATTN_OK) return st;
  int64_t b, hq, nq, dk, kb, kh, nk, kd;
  pattn__dims4(q, desc->layout, &b, &hq, &nq, &dk);
  pattn__dims4(k, desc->layout, &kb, &kh, &nk, &kd);
  if (mask) {
    if ((st = pattn__check_tensor(ctx, OP, "mask", mask, 4)) || (st = pattn__check_same_dtype(ctx, OP, "mask", mask, PATTN_F32)))
      return st;
    if ((mask->shape[0] != b && mask->shape[0] != 1) || (mask->shape[1] != hq && mask->shape[1] != 1) || mask->shape[2] != nq ||
        mask->shape[3] != nk)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                          "%s: mask has shape [%lld, %lld, %lld, %lld], expected [b|1, hq|1, nq, nk] = [%lld|1, %lld|1, %lld, %lld]", OP,
                          (long long)mask->shape[0], (long long)mask->shape[1], (long long)mask->shape[2], (long long)mask->shape[3],
                          (long long)b, (long long)hq, (long long)nq, (long long)nk);
  }
  if (lse && (st = pattn__check_lse(ctx, OP, lse, b, hq, nq))) return st;
  const pattn_tensor *outs[] = {out, lse};
  const char *onames[] = {"out", "lse"};
  const pattn_tensor *all[] = {q, k, v, mask, out, lse};
  const char *anames[] = {"q", "k", "v", "mask", "out", "lse"};
  if ((st = pattn__check_distinct(ctx, OP, outs, onames, 2, all, anames, 6))) return st;

  pattn_view qv = pattn__view4(q, desc->layout), kv = pattn__view4(k, desc->layout), vv = pattn__view4(v, desc->layout);
  pattn_view ov = pattn__view4(out, desc->layout), mv, lv;
  if (mask) {
    mv = (pattn_view){mask->buf, PATTN_F32, (int64_t)(mask->byte_offset / 4), mask->shape[0], 1, mask->shape[1], nq, nk,
                      mask->shape[0] == 1 ? 0 : mask->shape[1] * nq * nk, 0, mask->shape[1] == 1 ? 0 : nq * nk, nk};
  }
  if (lse) lv = pattn__lse_view(lse);
  return pattn__run_attention(ctx, desc, pattn__resolve_scale(desc->scale, dk), &qv, &kv, &vv, mask ? &mv : NULL, &ov,
                              lse ? &lv : NULL);
}

pattn_status pattn_attention_backward(pattn_context *ctx, const pattn_attention_desc *desc, const pattn_tensor *q,
                                      const pattn_tensor *k, const pattn_tensor *v, const pattn_tensor *out, const pattn_tensor *lse,
                                      const pattn_tensor *dout, pattn_tensor *dq, pattn_tensor *dk, pattn_tensor *dv) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = pattn__validate_attention_desc(ctx, OPB, desc);
  if (st == PATTN_OK) st = pattn__check_qkvo(ctx, OPB, desc->layout, q, k, v, out, "out");
  if (st == PATTN_OK) st = pattn__check_qkvo(ctx, OPB, desc->layout, q, k, v, dout, "dout");
  const pattn_tensor *grads[] = {dq, dk, dv};
  const char *gnames[] = {"dq", "dk", "dv"};
  for (int i = 0; i < 3 && st == PATTN_OK; i++) {
    st = pattn__check_tensor(ctx, OPB, gnames[i], grads[i], 4);
    if (st == PATTN_OK) st = pattn__check_same_dtype(ctx, OPB, gnames[i], grads[i], q->dtype);
  }
  if (st != PATTN_OK) return st;
  int64_t b, hq, nq, d;
  pattn__dims4(q, desc->layout, &b, &hq, &nq, &d);
  for (int i = 0; i < 4; i++) {
    if (dq->shape[i] != q->shape[i])
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: dq has shape[%d]=%lld, expected q's %lld", OPB, i,
                          (long long)dq->shape[i], (long long)q->shape[i]);
    if (dk->shape[i] != k->shape[i])
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: dk has shape[%d]=%lld, expected k's %lld", OPB, i,
                          (long long)dk->shape[i], (long long)k->shape[i]);
    if (dv->shape[i] != v->shape[i])
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: dv has shape[%d]=%lld, expected v's %lld", OPB, i,
                          (long long)dv->shape[i], (long long)v->shape[i]);
  }
  if ((st = pattn__check_lse(ctx, OPB, lse, b, hq, nq))) return st;
  const pattn_tensor *outs[] = {dq, dk, dv};
  const char *onames[] = {"dq", "dk", "dv"};
  const pattn_tensor *all[] = {q, k, v, out, lse, dout, dq, dk, dv};
  const char *anames[] = {"q", "k", "v", "out", "lse", "dout", "dq", "dk", "dv"};
  if ((st = pattn__check_distinct(ctx, OPB, outs, onames, 3, all, anames, 9))) return st;

  pattn_layout L = desc->layout;
  pattn_attn_bwd_args a = {pattn__view4(q, L),  pattn__view4(k, L),  pattn__view4(v, L),  pattn__view4(out, L),
                           pattn__view4(dout, L), pattn__lse_view(lse),     pattn__view4(dq, L), pattn__view4(dk, L),
                           pattn__view4(dv, L), pattn__resolve_scale(desc->scale, d), desc->causal != 0,
                           pattn__view4(k, L).n - nq, desc->precision};
  return ctx->be->attention_backward(ctx, &a);
}

/* Ring attention on one context (SPEC.md section 3): K/V are cut into ring_size chunks
 * along n and folded in one at a time; the running output and logsumexp stay in f32, so
 * extra memory is O(b*h*nq*dv), never a score matrix. */
#include <math.h>

#include "comm.h"
#include "internal.h"

#define OP "ring_attention"

pattn_status pattn__validate_ring(pattn_context *ctx, const char *op, const pattn_ring_desc *desc, int64_t nk) {
  pattn_status st = PATTN_CHECK_OP_DESC(ctx, op, desc);
  if (st != PATTN_OK) return st;
  if (desc->ring_size < 1)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: ring_size=%d must be >= 1", op, desc->ring_size);
  if (nk % desc->ring_size)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: ring_size=%d does not divide the key length n=%lld", op,
                        desc->ring_size, (long long)nk);
  return PATTN_OK;
}

static pattn_view rows(const pattn_view *v, int64_t first, int64_t count) {
  pattn_view c = *v;
  c.offset += first * v->sn;
  c.n = count;
  return c;
}

pattn_status pattn__run_ring(pattn_context *ctx, float scale, int causal, int ring_size, const pattn_view *q, const pattn_view *k,
                             const pattn_view *v, const pattn_view *out, const pattn_view *lse) {
  int64_t nq = q->n, nk = k->n, chunk = nk / ring_size;
  int64_t b = q->nb, h = q->nh, dv = v->d;
  if (ring_size == 1) {
    pattn_attn_args a = {*q, *k, *v, *out, NULL, lse, scale, causal, nk - nq, 1.0f, PATTN_ALGO_FLASH, PATTN_PRECISION_DEFAULT};
    return ctx->be->attention(ctx, &a);
  }
  int64_t so[4] = {b, h, nq, dv}, sl[4] = {b, h, nq, 1};
  pattn_tensor *acc = NULL, *acc_lse = NULL, *part = NULL, *part_lse = NULL;
  pattn_status st = pattn__temp(ctx, PATTN_F32, 4, so, &acc);
  if (st == PATTN_OK) st = pattn__temp(ctx, PATTN_F32, 4, sl, &acc_lse);
  if (st == PATTN_OK) st = pattn__temp(ctx, PATTN_F32, 4, so, &part);
  if (st == PATTN_OK) st = pattn__temp(ctx, PATTN_F32, 4, sl, &part_lse);
  if (st == PATTN_OK) {
    pattn_view av = {acc->buf, PATTN_F32, 0, b, 1, h, nq, dv, h * nq * dv, 0, nq * dv, dv};
    pattn_view alv = {acc_lse->buf, PATTN_F32, 0, b, 1, h, nq, 1, h * nq, 0, nq, 1};
    pattn_view pv = av, plv = alv;
    pv.buf = part->buf;
    plv.buf = part_lse->buf;
    for (int c = 0; c < ring_size && st == PATTN_OK; c++) {
      /* the first chunk lands in the accumulator directly; later ones are merged into it */
      pattn_attn_args a = {*q, rows(k, c * chunk, chunk), rows(v, c * chunk, chunk), c ? pv : av, NULL, c ? &plv : &alv,
                           scale, causal, nk - nq - c * chunk, 1.0f, PATTN_ALGO_FLASH, PATTN_PRECISION_DEFAULT};
      st = ctx->be->attention(ctx, &a);
      if (st == PATTN_OK && c) st = ctx->be->merge(ctx, &av, &alv, &pv, &plv);
    }
    if (st == PATTN_OK) st = ctx->be->copy(ctx, out, &av, 1.0f);
    if (st == PATTN_OK && lse) st = ctx->be->copy(ctx, lse, &alv, 1.0f);
  }
  pattn_tensor_destroy(acc);
  pattn_tensor_destroy(acc_lse);
  pattn_tensor_destroy(part);
  pattn_tensor_destroy(part_lse);
  return st;
}

pattn_status pattn_ring_attention(pattn_context *ctx, const pattn_ring_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                  const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out, pattn_tensor *lse) {
  /* with a comm: one shard per rank, validated collectively (ops_ring_dist.c) */
  if (comm) return pattn__ring_attention_dist(ctx, desc, comm, q, k, v, out, lse);
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = PATTN_CHECK_OP_DESC(ctx, OP, desc);
  if (st == PATTN_OK) st = pattn__check_qkvo(ctx, OP, desc->layout, q, k, v, out, "out");
  if (st != PATTN_OK) return st;
  int64_t b, hq, nq, dk, kb, kh, nk, kd;
  pattn__dims4(q, desc->layout, &b, &hq, &nq, &dk);
  pattn__dims4(k, desc->layout, &kb, &kh, &nk, &kd);
  if ((st = pattn__validate_ring(ctx, OP, desc, nk))) return st;
  if (lse && (st = pattn__check_lse(ctx, OP, lse, b, hq, nq))) return st;
  const pattn_tensor *outs[] = {out, lse};
  const char *onames[] = {"out", "lse"};
  const pattn_tensor *all[] = {q, k, v, out, lse};
  const char *anames[] = {"q", "k", "v", "out", "lse"};
  if ((st = pattn__check_distinct(ctx, OP, outs, onames, 2, all, anames, 5))) return st;
  pattn_view qv = pattn__view4(q, desc->layout), kv = pattn__view4(k, desc->layout), vv = pattn__view4(v, desc->layout),
             ov = pattn__view4(out, desc->layout), lv;
  if (lse) lv = pattn__lse_view(lse);
  return pattn__run_ring(ctx, pattn__resolve_scale(desc->scale, dk), desc->causal != 0, desc->ring_size, &qv, &kv, &vv, &ov,
                         lse ? &lv : NULL);
}

/* One context: the dilated result itself (SPEC.md 3: "equal to the single-device result");
 * with a comm: the global sequence sharded over its ranks (ops_ring_dist.c). */
pattn_status pattn_ring_dilated_attention(pattn_context *ctx, const pattn_dilated_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                          const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out) {
  if (comm) return pattn__ring_dilated_dist(ctx, desc, comm, q, k, v, out);
  pattn_status st = pattn__check_ctx(ctx);
  if (st != PATTN_OK) return st;
  return pattn_dilated_attention(ctx, desc, q, k, v, out);
}

/* LongNet dilated attention (SPEC.md section 2), composed from strided attention: a
 * dilated segment is a view whose row stride is rate * (the tensor's row stride) and whose
 * segment axis walks the segments, so one backend launch covers a whole group and no
 * position is ever gathered or scattered. */
#include <math.h>
#include <string.h>

#include "internal.h"

#define OP "dilated_attention"

pattn_status pattn__validate_dilated(pattn_context *ctx, const char *op, const pattn_dilated_desc *desc, int64_t n, int64_t h) {
  pattn_status st = pattn__check_op_desc(ctx, op, desc, desc ? desc->struct_size : 0, PATTN_DILATED_DESC_MIN_SIZE,
                                         desc ? desc->layout : 0, desc ? desc->scale : 0.0f);
  if (st != PATTN_OK) return st;
  if (desc->num_segments < 1)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: num_segments=%d must be >= 1", op, desc->num_segments);
  if (!desc->segment_lengths) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: segment_lengths is NULL", op);
  if (!desc->dilation_rates) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: dilation_rates is NULL", op);
  if (desc->merge != PATTN_DILATED_MERGE_HEAD_GROUPS && desc->merge != PATTN_DILATED_MERGE_LSE)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: merge=%d is not HEAD_GROUPS (0) or LSE (1)", op, (int)desc->merge);
  if (h < desc->num_segments)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: heads h=%lld is less than num_segments G=%d (every group needs a head)",
                        op, (long long)h, desc->num_segments);
  for (int i = 0; i < desc->num_segments; i++) {
    int64_t s = desc->segment_lengths[i], r = desc->dilation_rates[i];
    if (s < 1 || n % s)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: segment_lengths[%d]=%lld does not divide n=%lld", op, i, (long long)s,
                          (long long)n);
    if (r < 1) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: dilation_rates[%d]=%lld must be >= 1", op, i, (long long)r);
  }
  return PATTN_OK;
}

/* The view of heads [h0, h0+nh) at rows {seg*s + o + t*r} of every segment of length s. */
static pattn_view dilate(const pattn_view *base, int64_t h0, int64_t nh, int64_t s, int64_t o, int64_t r) {
  pattn_view v = *base;
  v.offset += h0 * base->sh + o * base->sn;
  v.nh = nh;
  v.ns = base->n / s;
  v.ss = s * base->sn;
  v.n = (s - o + r - 1) / r;
  v.sn = r * base->sn;
  return v;
}

/* One attention over strided views, either in place (fused) or the original way: copy the
 * dilated positions into contiguous buffers, attend there, copy the result back. */
static pattn_status attend(pattn_context *ctx, const pattn_attn_args *a, int gather) {
  if (!gather) return ctx->be->attention(ctx, a);
  const pattn_view *src[3] = {&a->q, &a->k, &a->v};
  pattn_tensor *t[5] = {NULL};
  pattn_view g[5];
  pattn_status st = PATTN_OK;
  for (int i = 0; i < 5 && st == PATTN_OK; i++) {
    const pattn_view *like = i < 3 ? src[i] : i == 3 ? &a->out : a->lse;
    if (!like) continue;
    pattn_dtype dt = i == 3 ? PATTN_F32 : like->dtype;
    int64_t shape[5] = {like->nb, like->ns, like->nh, like->n, like->d};
    st = pattn__temp(ctx, dt, 5, shape, &t[i]);
    if (st != PATTN_OK) break;
    g[i] = (pattn_view){t[i]->buf, dt, 0, like->nb, like->ns, like->nh, like->n, like->d,
                        like->ns * like->nh * like->n * like->d, like->nh * like->n * like->d, like->n * like->d, like->d};
    if (i < 3) st = ctx->be->copy(ctx, &g[i], src[i], 1.0f); /* gather */
  }
  if (st == PATTN_OK) {
    pattn_attn_args c = *a;
    c.q = g[0], c.k = g[1], c.v = g[2], c.out = g[3], c.lse = a->lse ? &g[4] : NULL, c.out_scale = 1.0f;
    st = ctx->be->attention(ctx, &c);
  }
  if (st == PATTN_OK) st = ctx->be->copy(ctx, &a->out, &g[3], a->out_scale); /* scatter */
  if (st == PATTN_OK && a->lse) st = ctx->be->copy(ctx, a->lse, &g[4], 1.0f);
  for (int i = 0; i < 5; i++) pattn_tensor_destroy(t[i]);
  return st;
}

static pattn_status head_groups(pattn_context *ctx, const pattn__dilated_params *p, const pattn_view *q, const pattn_view *k,
                                const pattn_view *v, const pattn_view *out) {
  pattn_status st = ctx->be->fill(ctx, out, 0.0f);
  int64_t h = q->nh, G = p->G, h0 = 0;
  for (int64_t i = 0; i < G && st == PATTN_OK; i++) {
    int64_t hg = h / G + (i < h % G), s = p->seg[i], r = p->rate[i], o = i % r;
    if (o < s) {
      pattn_view qv = dilate(q, h0, hg, s, o, r), kv = dilate(k, h0, hg, s, o, r), vv = dilate(v, h0, hg, s, o, r),
                 ov = dilate(out, h0, hg, s, o, r);
      pattn_attn_args a = {qv, kv, vv, ov, NULL, NULL, p->scale, p->causal, 0, 1.0f / (float)G, PATTN_ALGO_AUTO,
                           PATTN_PRECISION_DEFAULT};
      st = attend(ctx, &a, p->gather);
    }
    h0 += hg;
  }
  return st;
}

/* f32 [b][h][n][d] accumulator views over a temp tensor, (b, h, n) order. */
static pattn_view temp_view(const pattn_tensor *t, int64_t b, int64_t h, int64_t n, int64_t d) {
  pattn_view v = {t->buf, PATTN_F32, 0, b, 1, h, n, d, h * n * d, 0, n * d, d};
  return v;
}

static pattn_status lse_merge(pattn_context *ctx, const pattn__dilated_params *p, const pattn_view *q, const pattn_view *k,
                              const pattn_view *v, const pattn_view *out) {
  int64_t b = q->nb, h = q->nh, n = q->n, d = v->d;
  int64_t so[4] = {b, h, n, d}, sl[4] = {b, h, n, 1};
  pattn_tensor *acc = NULL, *acc_lse = NULL, *part = NULL, *part_lse = NULL;
  pattn_status st = pattn__temp(ctx, PATTN_F32, 4, so, &acc);
  if (st == PATTN_OK) st = pattn__temp(ctx, PATTN_F32, 4, sl, &acc_lse);
  if (st == PATTN_OK) st = pattn__temp(ctx, PATTN_F32, 4, so, &part);
  if (st == PATTN_OK) st = pattn__temp(ctx, PATTN_F32, 4, sl, &part_lse);
  pattn_view av, alv, pv, plv;
  if (st == PATTN_OK) {
    av = temp_view(acc, b, h, n, d);
    alv = temp_view(acc_lse, b, h, n, 1);
    pv = temp_view(part, b, h, n, d);
    plv = temp_view(part_lse, b, h, n, 1);
    st = ctx->be->fill(ctx, &av, 0.0f);
  }
  if (st == PATTN_OK) st = ctx->be->fill(ctx, &alv, -INFINITY);
  for (int i = 0; i < p->G && st == PATTN_OK; i++) {
    int64_t s = p->seg[i], r = p->rate[i], ch = (h + r - 1) / r;
    st = ctx->be->fill(ctx, &pv, 0.0f);
    if (st == PATTN_OK) st = ctx->be->fill(ctx, &plv, -INFINITY);
    /* head block c reads offset c in every segment */
    for (int64_t c = 0; c < r && c * ch < h && st == PATTN_OK; c++) {
      if (c >= s) continue;
      int64_t h0 = c * ch, nh = (h0 + ch <= h ? ch : h - h0);
      pattn_view qv = dilate(q, h0, nh, s, c, r), kv = dilate(k, h0, nh, s, c, r), vv = dilate(v, h0, nh, s, c, r),
                 ov = dilate(&pv, h0, nh, s, c, r), lv = dilate(&plv, h0, nh, s, c, r);
      pattn_attn_args a = {qv, kv, vv, ov, NULL, &lv, p->scale, p->causal, 0, 1.0f, PATTN_ALGO_AUTO, PATTN_PRECISION_DEFAULT};
      st = attend(ctx, &a, p->gather);
    }
    if (st == PATTN_OK) st = ctx->be->merge(ctx, &av, &alv, &pv, &plv);
  }
  if (st == PATTN_OK) st = ctx->be->copy(ctx, out, &av, 1.0f);
  pattn_tensor_destroy(acc);
  pattn_tensor_destroy(acc_lse);
  pattn_tensor_destroy(part);
  pattn_tensor_destroy(part_lse);
  return st;
}

pattn_status pattn__run_dilated(pattn_context *ctx, const pattn__dilated_params *p, const pattn_view *q, const pattn_view *k,
                                const pattn_view *v, const pattn_view *out) {
  return p->merge == PATTN_DILATED_MERGE_LSE ? lse_merge(ctx, p, q, k, v, out) : head_groups(ctx, p, q, k, v, out);
}

/* q, k, v, out: [b, n, h, d] (BNHD) or [b, h, n, d] (BHND), all the same shape and dtype. */
pattn_status pattn__check_self_attention(pattn_context *ctx, const char *op, pattn_layout layout, const pattn_tensor *q,
                                         const pattn_tensor *k, const pattn_tensor *v, const pattn_tensor *out) {
  const char *names[] = {"q", "k", "v", "out"};
  const pattn_tensor *ts[] = {q, k, v, out};
  pattn_status st = PATTN_OK;
  for (int i = 0; i < 4 && st == PATTN_OK; i++) st = pattn__check_tensor(ctx, op, names[i], ts[i], 4);
  for (int i = 1; i < 4 && st == PATTN_OK; i++) {
    st = pattn__check_same_dtype(ctx, op, names[i], ts[i], q->dtype);
    for (int j = 0; j < 4 && st == PATTN_OK; j++)
      if (ts[i]->shape[j] != q->shape[j])
        st = pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s has shape[%d]=%lld, expected q's %lld", op, names[i], j,
                          (long long)ts[i]->shape[j], (long long)q->shape[j]);
  }
  const pattn_tensor *outs[] = {out};
  const char *onames[] = {"out"};
  if (st == PATTN_OK) st = pattn__check_distinct(ctx, op, outs, onames, 1, ts, names, 4);
  (void)layout;
  return st;
}

pattn_status pattn_dilated_attention(pattn_context *ctx, const pattn_dilated_desc *desc, const pattn_tensor *q, const pattn_tensor *k,
                                     const pattn_tensor *v, pattn_tensor *out) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK)
    st = pattn__check_op_desc(ctx, OP, desc, desc ? desc->struct_size : 0, PATTN_DILATED_DESC_MIN_SIZE, desc ? desc->layout : 0,
                              desc ? desc->scale : 0.0f);
  if (st == PATTN_OK) st = pattn__check_self_attention(ctx, OP, desc->layout, q, k, v, out);
  if (st != PATTN_OK) return st;
  int64_t b, h, n, d;
  pattn__dims4(q, desc->layout, &b, &h, &n, &d);
  if ((st = pattn__validate_dilated(ctx, OP, desc, n, h))) return st;
  pattn__dilated_params p = {pattn__resolve_scale(desc->scale, d), desc->causal != 0, desc->num_segments, desc->segment_lengths,
                             desc->dilation_rates, desc->merge, pattn__dilated_gather(desc)};
  pattn_view qv = pattn__view4(q, desc->layout), kv = pattn__view4(k, desc->layout), vv = pattn__view4(v, desc->layout),
             ov = pattn__view4(out, desc->layout);
  return pattn__run_dilated(ctx, &p, &qv, &kv, &vv, &ov);
}

/* Reference dense and block-sparse attention (SPEC.md sections 1 and 4): the conformance
 * oracle. Straight loops, f64 accumulation, one thread, results rounded once at the store.
 * Written for obviousness, not speed; the one concession is that the K/V rows of the current
 * kv head are converted to double once and reused by every query row of its head group. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* Double copies of one kv head's K [nk][dk] and V [nk][dv], plus per-row scratch. */
typedef struct ref_ws {
  double *k, *v;   /* kv head currently loaded */
  double *s;       /* [nk] scores of one row, -inf where the key is not visible */
  double *q, *acc; /* [dk] query row, [dv] output row */
  void   *mem;
  size_t  bytes;
} ref_ws;

static pattn_status ref_ws_alloc(pattn_context *ctx, ref_ws *w, int64_t nk, int64_t dk, int64_t dv) {
  /* +1 so that empty extents still give a non-empty allocation */
  size_t count = (size_t)(nk * dk + nk * dv + nk + dk + dv) + 1;
  w->bytes = count * sizeof(double);
  w->mem = NULL;
  pattn_status st = cpu_workspace(ctx, w->bytes, &w->mem);
  if (st != PATTN_OK || w->mem == NULL)
    return cpu_core->error(ctx, st != PATTN_OK ? st : PATTN_ERR_OUT_OF_MEMORY,
                           "cpu reference attention: cannot allocate %zu bytes of workspace", w->bytes);
  double *p = w->mem;
  w->k = p;   p += nk * dk;
  w->v = p;   p += nk * dv;
  w->s = p;   p += nk;
  w->q = p;   p += dk;
  w->acc = p;
  return PATTN_OK;
}

static void ref_load_kv(ref_ws *w, const pattn_view *k, const pattn_view *v, int64_t ib, int64_t is,
                        int64_t kh) {
  for (int64_t j = 0; j < k->n; j++) {
    for (int64_t c = 0; c < k->d; c++) w->k[j * k->d + c] = cpu_vload(k, ib, is, kh, j, c);
    for (int64_t c = 0; c < v->d; c++) w->v[j * v->d + c] = cpu_vload(v, ib, is, kh, j, c);
  }
}

static void ref_load_row(double *dst, const pattn_view *x, int64_t ib, int64_t is, int64_t ih, int64_t i) {
  for (int64_t c = 0; c < x->d; c++) dst[c] = cpu_vload(x, ib, is, ih, i, c);
}

static double ref_dot(const double *a, const double *b, int64_t n) {
  double s = 0.0;
  for (int64_t c = 0; c < n; c++) s += a[c] * b[c];
  return s;
}

/* Softmax of s[0..nk) (-inf entries are invisible) applied to V: acc = sum_j p_j v_j.
 * Returns the row's logsumexp; -inf (and acc = 0) when no key is visible. */
static double ref_softmax_row(const double *s, int64_t nk, const double *V, int64_t dv, double *acc) {
  for (int64_t c = 0; c < dv; c++) acc[c] = 0.0;
  double m = -INFINITY;
  for (int64_t j = 0; j < nk; j++)
    if (s[j] > m) m = s[j];
  if (m == -INFINITY) return -INFINITY;
  double sum = 0.0;
  for (int64_t j = 0; j < nk; j++) {
    if (s[j] == -INFINITY) continue;
    double p = exp(s[j] - m);
    sum += p;
    for (int64_t c = 0; c < dv; c++) acc[c] += p * V[j * dv + c];
  }
  for (int64_t c = 0; c < dv; c++) acc[c] /= sum;
  return m + log(sum);
}

/* q.nh query heads over k.nh kv heads: the size of a head group, or 0 if it makes no sense
 * (the core validates this; we only refuse to divide by zero). */
static int64_t ref_group(const pattn_view *q, const pattn_view *k) {
  if (k->nh <= 0 || q->nh % k->nh != 0) return 0;
  return q->nh / k->nh;
}

/* Index into a possibly broadcast view (mask): a dimension of extent 1 reads index 0. */
static int64_t ref_bcast_index(const pattn_view *m, int64_t ib, int64_t is, int64_t ih, int64_t i, int64_t j) {
  return pattn_view_index(m, m->nb > 1 ? ib : 0, m->ns > 1 ? is : 0, m->nh > 1 ? ih : 0, i, j);
}

pattn_status cpu_ref_attention(pattn_context *ctx, const pattn_attn_args *a) {
  const pattn_view *q = &a->q, *k = &a->k, *v = &a->v, *out = &a->out;
  int64_t group = ref_group(q, k);
  if (group == 0)
    return cpu_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "cpu reference attention: %lld query heads over %lld kv heads",
                           (long long)q->nh, (long long)k->nh);
  const int64_t nk = k->n, dk = q->d, dv = v->d;
  ref_ws w;
  pattn_status st = ref_ws_alloc(ctx, &w, nk, dk, dv);
  if (st != PATTN_OK) return st;
  const double scale = a->scale, out_scale = a->out_scale;

  for (int64_t ib = 0; ib < q->nb; ib++)
    for (int64_t is = 0; is < q->ns; is++)
      for (int64_t ih = 0; ih < q->nh; ih++) {
        int64_t kh = ih / group;
        if (ih % group == 0) ref_load_kv(&w, k, v, ib, is, kh); /* first head of its group */
        for (int64_t i = 0; i < q->n; i++) {
          ref_load_row(w.q, q, ib, is, ih, i);
          for (int64_t j = 0; j < nk; j++) {
            if (a->causal && j > i + a->causal_offset) { w.s[j] = -INFINITY; continue; }
            double sj = scale * ref_dot(w.q, w.k + j * dk, dk);
            if (a->mask) sj += pattn_load(a->mask->buf, a->mask->dtype, ref_bcast_index(a->mask, ib, is, ih, i, j));
            w.s[j] = sj;
          }
          double lse = ref_softmax_row(w.s, nk, w.v, dv, w.acc);
          for (int64_t c = 0; c < dv; c++)
            pattn_store_f64(out->buf, out->dtype, pattn_view_index(out, ib, is, ih, i, c), out_scale * w.acc[c]);
          if (a->lse)
            pattn_store_f64(a->lse->buf, a->lse->dtype, pattn_view_index(a->lse, ib, is, ih, i, 0), lse);
        }
      }
  cpu_workspace_free(ctx, w.mem, w.bytes);
  return PATTN_OK;
}

pattn_status cpu_ref_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a) {
  const pattn_view *q = &a->q, *k = &a->k, *v = &a->v, *out = &a->out;
  int64_t group = ref_group(q, k);
  const int64_t B = a->block_size;
  if (group == 0 || B <= 0)
    return cpu_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "cpu reference block-sparse: bad heads or block size");
  const int64_t nk = k->n, dk = q->d, dv = v->d;
  ref_ws w;
  pattn_status st = ref_ws_alloc(ctx, &w, nk, dk, dv);
  if (st != PATTN_OK) return st;
  const double scale = a->scale;

  for (int64_t ib = 0; ib < q->nb; ib++)
    for (int64_t is = 0; is < q->ns; is++)
      for (int64_t ih = 0; ih < q->nh; ih++) {
        int64_t kh = ih / group;
        if (ih % group == 0) ref_load_kv(&w, k, v, ib, is, kh);
        const uint8_t *lay = a->layout + (a->layout_heads > 1 ? ih : 0) * a->nqb * a->nkb;
        for (int64_t i = 0; i < q->n; i++) {
          ref_load_row(w.q, q, ib, is, ih, i);
          const uint8_t *row = lay + (i / B) * a->nkb;
          /* scores outside active blocks are -inf; one softmax over the whole row */
          for (int64_t j = 0; j < nk; j++) w.s[j] = -INFINITY;
          for (int64_t J = 0; J < a->nkb; J++) {
            if (!row[J]) continue;
            int64_t j1 = (J + 1) * B < nk ? (J + 1) * B : nk;
            for (int64_t j = J * B; j < j1; j++) {
              if (a->causal && j > i + a->causal_offset) break;
              w.s[j] = scale * ref_dot(w.q, w.k + j * dk, dk);
            }
          }
          ref_softmax_row(w.s, nk, w.v, dv, w.acc);
          for (int64_t c = 0; c < dv; c++)
            pattn_store_f64(out->buf, out->dtype, pattn_view_index(out, ib, is, ih, i, c), w.acc[c]);
        }
      }
  cpu_workspace_free(ctx, w.mem, w.bytes);
  return PATTN_OK;
}

/* Backward, per (batch, segment, kv head): the kv head's dK/dV gather contributions from
 * every query head of its group, so they are accumulated in double and stored once. */
pattn_status cpu_ref_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a) {
  const pattn_view *q = &a->q, *k = &a->k, *v = &a->v;
  int64_t group = ref_group(q, k);
  if (group == 0)
    return cpu_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "cpu reference attention backward: %lld query heads over %lld kv heads",
                           (long long)q->nh, (long long)k->nh);
  const int64_t nk = k->n, dk = q->d, dv = v->d;
  ref_ws w;
  pattn_status st = ref_ws_alloc(ctx, &w, nk, dk, dv);
  if (st != PATTN_OK) return st;
  /* dk/dv accumulators [nk][dk], [nk][dv]; per-row dout [dv] and dq [dk] */
  size_t gbytes = ((size_t)(nk * dk + nk * dv + dv + dk) + 1) * sizeof(double);
  void *gmem = NULL;
  st = cpu_workspace(ctx, gbytes, &gmem);
  if (st != PATTN_OK || gmem == NULL) {
    cpu_workspace_free(ctx, w.mem, w.bytes);
    return cpu_core->error(ctx, st != PATTN_OK ? st : PATTN_ERR_OUT_OF_MEMORY,
                           "cpu reference attention backward: cannot allocate %zu bytes of workspace", gbytes);
  }
  double *gk = gmem, *gv = gk + nk * dk, *dorow = gv + nk * dv, *dqrow = dorow + dv;
  const double scale = a->scale;

  for (int64_t ib = 0; ib < q->nb; ib++)
    for (int64_t is = 0; is < q->ns; is++)
      for (int64_t kh = 0; kh < k->nh; kh++) {
        ref_load_kv(&w, k, v, ib, is, kh);
        memset(gk, 0, (size_t)(nk * dk) * sizeof(double));
        memset(gv, 0, (size_t)(nk * dv) * sizeof(double));
        for (int64_t ih = kh * group; ih < (kh + 1) * group; ih++)
          for (int64_t i = 0; i < q->n; i++) {
            ref_load_row(w.q, q, ib, is, ih, i);
            ref_load_row(dorow, &a->dout, ib, is, ih, i);
            double D = 0.0;
            for (int64_t c = 0; c < dv; c++) D += dorow[c] * cpu_vload(&a->out, ib, is, ih, i, c);
            double lse = cpu_vload(&a->lse, ib, is, ih, i, 0);
            for (int64_t c = 0; c < dk; c++) dqrow[c] = 0.0;
            if (lse != -INFINITY) {
              for (int64_t j = 0; j < nk; j++) {
                if (a->causal && j > i + a->causal_offset) break;
                const double *kj = w.k + j * dk, *vj = w.v + j * dv;
                double p = exp(scale * ref_dot(w.q, kj, dk) - lse);
                double ds = p * (ref_dot(dorow, vj, dv) - D);
                for (int64_t c = 0; c < dv; c++) gv[j * dv + c] += p * dorow[c];
                for (int64_t c = 0; c < dk; c++) {
                  dqrow[c] += scale * ds * kj[c];
                  gk[j * dk + c] += scale * ds * w.q[c];
                }
              }
            }
            for (int64_t c = 0; c < dk; c++)
              pattn_store_f64(a->dq.buf, a->dq.dtype, pattn_view_index(&a->dq, ib, is, ih, i, c), dqrow[c]);
          }
        for (int64_t j = 0; j < nk; j++) {
          for (int64_t c = 0; c < dk; c++)
            pattn_store_f64(a->dk.buf, a->dk.dtype, pattn_view_index(&a->dk, ib, is, kh, j, c), gk[j * dk + c]);
          for (int64_t c = 0; c < dv; c++)
            pattn_store_f64(a->dv.buf, a->dv.dtype, pattn_view_index(&a->dv, ib, is, kh, j, c), gv[j * dv + c]);
        }
      }
  cpu_workspace_free(ctx, gmem, gbytes);
  cpu_workspace_free(ctx, w.mem, w.bytes);
  return PATTN_OK;
}

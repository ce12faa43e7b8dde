/* Distributed ring dilated attention (SPEC.md sections 2 and 3) over a pattn_comm (comm.h):
 * the global sequence sharded contiguously over the ranks, equal to the one-context result.
 * Agreement and staging as in ops_ring_dist.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "dtype.h"
#include "internal.h"

#define OP_DIL "ring_dilated_attention"

/* ---- ring dilated attention ----
 *
 * Every dilated branch is a "pattern": heads [h0, h0+nh), segments of length s, positions
 * seg_start + o + t*r. A query attends to the pattern positions of its own segment. The
 * global sequence (n = W*m) is sharded contiguously, rank R holding [R*m, (R+1)*m). When
 * every segment touching the shard lies inside it, the pattern runs locally on strided
 * views. Otherwise the rank gathers the pattern's K/V over its window (the segments that
 * touch its shard) into a dense [b][segment][head][t][d] buffer: its own positions by a
 * device copy, the others' from the ranks holding them, each peer sending only the pattern
 * positions (1/r of its overlap) packed into one message (LongNet's distributed algorithm).
 * Its queries then attend to the gathered segments; a query of pattern index t sees keys
 * t' <= t under causal, i.e. causal_offset = the query's first t. */

typedef struct piece {
  int64_t g0, ns;  /* first global segment, number of segments */
  int64_t t0, nt;  /* pattern indices [t0, t0+nt) in each */
} piece;
#define MAX_PIECES 4 /* a contiguous range: partial first segment, whole ones, partial last */

typedef struct pattern {
  int64_t s, r, o, h0, nh;
  int64_t npat; /* pattern positions per segment */
} pattern;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* The pattern positions inside global range [A, B), grouped into pieces of equal t-range. */
static int pieces_of(const pattern *p, int64_t A, int64_t B, piece *out) {
  int n = 0;
  if (A >= B) return 0;
  for (int64_t g = A / p->s; g * p->s < B; g++) {
    int64_t seg0 = g * p->s, lo = A > seg0 + p->o ? A : seg0 + p->o, hi = B < seg0 + p->s ? B : seg0 + p->s;
    if (lo >= hi) continue;
    int64_t t0 = ceil_div(lo - seg0 - p->o, p->r), t1 = ceil_div(hi - seg0 - p->o, p->r);
    if (t1 <= t0) continue;
    if (n && out[n - 1].g0 + out[n - 1].ns == g && out[n - 1].t0 == t0 && out[n - 1].nt == t1 - t0) {
      out[n - 1].ns++;
    } else if (n < MAX_PIECES) {
      out[n++] = (piece){g, 1, t0, t1 - t0};
    }
  }
  return n;
}

static int64_t positions(const piece *pc, int n) {
  int64_t c = 0;
  for (int i = 0; i < n; i++) c += pc[i].ns * pc[i].nt;
  return c;
}

typedef struct dgeo {
  int     rank, W;
  int64_t m;        /* shard length */
  int64_t b, d;
} dgeo;

static int64_t win_lo(const pattern *p, const dgeo *g, int R) { return (int64_t)R * g->m / p->s * p->s; }
static int64_t win_hi(const pattern *p, const dgeo *g, int R) { return ceil_div((int64_t)(R + 1) * g->m, p->s) * p->s; }
static int is_local(const pattern *p, const dgeo *g) {
  return win_lo(p, g, g->rank) == (int64_t)g->rank * g->m && win_hi(p, g, g->rank) == (int64_t)(g->rank + 1) * g->m;
}

/* A piece inside a view of the local shard (rows relative to the shard start R0). */
static pattn_view piece_in_shard(const pattn_view *base, const pattern *p, const piece *pc, int64_t R0) {
  pattn_view v = *base;
  v.offset += p->h0 * base->sh + (pc->g0 * p->s + p->o + pc->t0 * p->r - R0) * base->sn;
  v.nh = p->nh;
  v.ns = pc->ns;
  v.ss = p->s * base->sn;
  v.n = pc->nt;
  v.sn = p->r * base->sn;
  return v;
}

/* The gathered window: dense [b][nsw][nh][npat][d] at element 0 of buf; rows [t0, t0+nt) of
 * segments [g0, g0+ns) (global indices, gw0 = the window's first). */
static pattn_view piece_in_window(void *buf, pattn_dtype dt, const pattern *p, const dgeo *g, int64_t nsw, int64_t gw0,
                                  int64_t g0, int64_t ns, int64_t t0, int64_t nt) {
  int64_t sh = p->npat * g->d, ss = p->nh * sh;
  pattn_view v = {buf, dt, (g0 - gw0) * ss + t0 * g->d, g->b, ns, p->nh, nt, g->d, nsw * ss, ss, sh, g->d};
  return v;
}

/* A piece packed densely at element offset e of a flat buffer. */
static pattn_view piece_packed(void *buf, pattn_dtype dt, const pattern *p, const dgeo *g, const piece *pc, int64_t e) {
  int64_t sh = pc->nt * g->d, ss = p->nh * sh;
  pattn_view v = {buf, dt, e, g->b, pc->ns, p->nh, pc->nt, g->d, pc->ns * ss, ss, sh, g->d};
  return v;
}

/* What one pattern needs: elements of the window (per tensor) and of the packed messages
 * (K and V, all peers) in each direction. */
static void pattern_sizes(const pattern *p, const dgeo *g, int64_t *win, int64_t *sendn, int64_t *recvn) {
  *win = *sendn = *recvn = 0;
  if (p->o >= p->s || is_local(p, g)) return;
  int64_t per = 2 * g->b * p->nh * g->d;
  *win = g->b * (win_hi(p, g, g->rank) - win_lo(p, g, g->rank)) / p->s * p->nh * p->npat * g->d;
  piece pc[MAX_PIECES];
  for (int peer = 0; peer < g->W; peer++) {
    if (peer == g->rank) continue;
    int64_t R0 = (int64_t)g->rank * g->m, P0 = (int64_t)peer * g->m;
    int64_t a = R0 > win_lo(p, g, peer) ? R0 : win_lo(p, g, peer), bb = R0 + g->m < win_hi(p, g, peer) ? R0 + g->m : win_hi(p, g, peer);
    *sendn += per * positions(pc, pieces_of(p, a, bb, pc));
    a = P0 > win_lo(p, g, g->rank) ? P0 : win_lo(p, g, g->rank);
    bb = P0 + g->m < win_hi(p, g, g->rank) ? P0 + g->m : win_hi(p, g, g->rank);
    *recvn += per * positions(pc, pieces_of(p, a, bb, pc));
  }
}

typedef struct dil_bufs {
  pattn_tensor *kw, *vw;         /* gathered windows */
  pattn_tensor *sendp, *recvp;   /* packed messages */
  pattn_tensor *acc, *acc_lse, *part, *part_lse; /* LSE merge */
  pattn__stage  st;
} dil_bufs;

static void dil_bufs_free(dil_bufs *d) {
  pattn_tensor *ts[] = {d->kw, d->vw, d->sendp, d->recvp, d->acc, d->acc_lse, d->part, d->part_lse};
  for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) pattn_tensor_destroy(ts[i]);
  pattn__stage_free(&d->st);
}

typedef struct dil_run {
  pattn_context *ctx;
  pattn_comm    *comm;
  dgeo           g;
  dil_bufs      *bufs;
  float          scale;
  int            causal;
  pattn_status   cst; /* this rank's backend status: compute stops, exchanges go on */
} dil_run;

static void note(dil_run *r, pattn_status s) {
  if (r->cst == PATTN_OK) r->cst = s;
}

/* Intersection of [a0, a1) and [b0, b1) into [*lo, *hi). */
static void isect(int64_t a0, int64_t a1, int64_t b0, int64_t b1, int64_t *lo, int64_t *hi) {
  *lo = a0 > b0 ? a0 : b0;
  *hi = a1 < b1 ? a1 : b1;
}

/* Attention of this rank's pattern queries (out, lse at the same positions; out_scale for
 * head-group merging). Returns the comm status; backend failures go to r->cst. */
static pattn_status run_pattern(dil_run *r, const pattern *p, const pattn_view *q, const pattn_view *k, const pattn_view *v,
                                const pattn_view *out, const pattn_view *lse, float out_scale) {
  pattn_context *ctx = r->ctx;
  const dgeo *g = &r->g;
  if (p->o >= p->s) return PATTN_OK; /* the pattern is empty */
  const int64_t R0 = (int64_t)g->rank * g->m;
  if (is_local(p, g)) {
    if (r->cst != PATTN_OK) return PATTN_OK;
    piece all = {R0 / p->s, g->m / p->s, 0, p->npat};
    pattn_view qv = piece_in_shard(q, p, &all, R0), kv = piece_in_shard(k, p, &all, R0), vv = piece_in_shard(v, p, &all, R0),
               ov = piece_in_shard(out, p, &all, R0), lv;
    if (lse) lv = piece_in_shard(lse, p, &all, R0);
    pattn_attn_args a = {qv, kv, vv, ov, NULL, lse ? &lv : NULL, r->scale, r->causal, 0, out_scale, PATTN_ALGO_AUTO,
                         PATTN_PRECISION_DEFAULT};
    note(r, ctx->be->attention(ctx, &a));
    return PATTN_OK;
  }
  dil_bufs *B = r->bufs;
  const pattn_dtype dt = k->dtype;
  const size_t es = pattn_dtype_bytes(dt);
  const int64_t gw0 = win_lo(p, g, g->rank) / p->s, nsw = win_hi(p, g, g->rank) / p->s - gw0;
  piece pc[MAX_PIECES];
  int np;
  int64_t lo, hi;

  /* pack what each peer needs from this shard: K pieces then V pieces, peer after peer */
  pattn_comm_xfer x[2 * 64];
  int nx = 0;
  int64_t se = 0, re = 0; /* element offsets in the send / receive packs */
  int64_t peer_send[64], peer_recv[64], send_off[64], recv_off[64];
  for (int peer = 0; peer < g->W; peer++) {
    peer_send[peer] = peer_recv[peer] = 0;
    send_off[peer] = se;
    recv_off[peer] = re;
    if (peer == g->rank) continue;
    isect(R0, R0 + g->m, win_lo(p, g, peer), win_hi(p, g, peer), &lo, &hi);
    np = pieces_of(p, lo, hi, pc);
    for (int t = 0; t < 2; t++)
      for (int i = 0; i < np; i++) {
        pattn_view dst = piece_packed(B->sendp->buf, dt, p, g, &pc[i], se), src = piece_in_shard(t ? v : k, p, &pc[i], R0);
        if (r->cst == PATTN_OK) note(r, ctx->be->copy(ctx, &dst, &src, 1.0f));
        se += g->b * pc[i].ns * p->nh * pc[i].nt * g->d;
      }
    peer_send[peer] = se - send_off[peer];
    isect((int64_t)peer * g->m, (int64_t)(peer + 1) * g->m, win_lo(p, g, g->rank), win_hi(p, g, g->rank), &lo, &hi);
    peer_recv[peer] = 2 * g->b * p->nh * g->d * positions(pc, pieces_of(p, lo, hi, pc));
    re += peer_recv[peer];
  }
  if (se && !r->comm->device_direct && r->cst == PATTN_OK)
    note(r, ctx->be->buf_read(ctx, B->sendp->buf, 0, B->st.host[0], (size_t)se * es));
  for (int peer = 0; peer < g->W; peer++) {
    if (peer_send[peer]) {
      void *ptr = r->comm->device_direct ? pattn__buf_ptr(B->sendp, (size_t)send_off[peer] * es) : (char *)B->st.host[0] + send_off[peer] * es;
      x[nx++] = (pattn_comm_xfer){PATTN_COMM_SEND, peer, ptr, (size_t)peer_send[peer] * es};
    }
    if (peer_recv[peer]) {
      void *ptr = r->comm->device_direct ? pattn__buf_ptr(B->recvp, (size_t)recv_off[peer] * es) : (char *)B->st.host[1] + recv_off[peer] * es;
      x[nx++] = (pattn_comm_xfer){PATTN_COMM_RECV, peer, ptr, (size_t)peer_recv[peer] * es};
    }
  }
  pattn_status st = nx ? r->comm->ops->start(r->comm, ctx, x, nx) : PATTN_OK;
  if (st != PATTN_OK) return st;

  /* meanwhile: this shard's own part of the window */
  isect(R0, R0 + g->m, win_lo(p, g, g->rank), win_hi(p, g, g->rank), &lo, &hi);
  np = pieces_of(p, lo, hi, pc);
  for (int t = 0; t < 2 && r->cst == PATTN_OK; t++)
    for (int i = 0; i < np && r->cst == PATTN_OK; i++) {
      pattn_view dst = piece_in_window((t ? B->vw : B->kw)->buf, dt, p, g, nsw, gw0, pc[i].g0, pc[i].ns, pc[i].t0, pc[i].nt);
      pattn_view src = piece_in_shard(t ? v : k, p, &pc[i], R0);
      note(r, ctx->be->copy(ctx, &dst, &src, 1.0f));
    }
  if (nx && (st = r->comm->ops->wait(r->comm, ctx)) != PATTN_OK) return st;
  if (re && !r->comm->device_direct && r->cst == PATTN_OK)
    note(r, ctx->be->buf_write(ctx, B->recvp->buf, 0, B->st.host[1], (size_t)re * es));

  /* unpack the peers' positions into the window */
  for (int peer = 0; peer < g->W; peer++) {
    if (!peer_recv[peer]) continue;
    isect((int64_t)peer * g->m, (int64_t)(peer + 1) * g->m, win_lo(p, g, g->rank), win_hi(p, g, g->rank), &lo, &hi);
    np = pieces_of(p, lo, hi, pc);
    int64_t e = recv_off[peer];
    for (int t = 0; t < 2; t++)
      for (int i = 0; i < np; i++) {
        pattn_view dst = piece_in_window((t ? B->vw : B->kw)->buf, dt, p, g, nsw, gw0, pc[i].g0, pc[i].ns, pc[i].t0, pc[i].nt);
        pattn_view src = piece_packed(B->recvp->buf, dt, p, g, &pc[i], e);
        if (r->cst == PATTN_OK) note(r, ctx->be->copy(ctx, &dst, &src, 1.0f));
        e += g->b * pc[i].ns * p->nh * pc[i].nt * g->d;
      }
  }

  /* this shard's queries against whole segments of the window */
  np = pieces_of(p, R0, R0 + g->m, pc);
  for (int i = 0; i < np && r->cst == PATTN_OK; i++) {
    pattn_view qv = piece_in_shard(q, p, &pc[i], R0), ov = piece_in_shard(out, p, &pc[i], R0), lv;
    if (lse) lv = piece_in_shard(lse, p, &pc[i], R0);
    pattn_view kv = piece_in_window(B->kw->buf, dt, p, g, nsw, gw0, pc[i].g0, pc[i].ns, 0, p->npat);
    pattn_view vv = piece_in_window(B->vw->buf, dt, p, g, nsw, gw0, pc[i].g0, pc[i].ns, 0, p->npat);
    pattn_attn_args a = {qv, kv, vv, ov, NULL, lse ? &lv : NULL, r->scale, r->causal, pc[i].t0, out_scale, PATTN_ALGO_AUTO,
                         PATTN_PRECISION_DEFAULT};
    note(r, ctx->be->attention(ctx, &a));
  }
  return PATTN_OK;
}

/* The patterns of the descriptor in execution order; calls fn for each (HEAD_GROUPS: one
 * per group; LSE: one per (branch, head block)), with branch boundaries reported through
 * branch_end so the LSE merge can fold each branch. */
typedef struct pattern_list {
  pattern p[1024];
  int     branch[1024]; /* branch index of each pattern */
  int     n;
} pattern_list;

static void list_patterns(const pattn_dilated_desc *desc, int64_t h, pattern_list *L) {
  L->n = 0;
  int G = desc->num_segments;
  if (desc->merge == PATTN_DILATED_MERGE_HEAD_GROUPS) {
    int64_t h0 = 0;
    for (int i = 0; i < G; i++) {
      int64_t hg = h / G + (i < h % G), s = desc->segment_lengths[i], r = desc->dilation_rates[i], o = i % r;
      if (L->n < 1024) {
        L->p[L->n] = (pattern){s, r, o, h0, hg, o < s ? ceil_div(s - o, r) : 0};
        L->branch[L->n++] = i;
      }
      h0 += hg;
    }
  } else {
    for (int i = 0; i < G; i++) {
      int64_t s = desc->segment_lengths[i], r = desc->dilation_rates[i], ch = ceil_div(h, r);
      for (int64_t c = 0; c < r && c * ch < h; c++) {
        if (c >= s || L->n >= 1024) continue;
        int64_t h0 = c * ch, nh = h0 + ch <= h ? ch : h - h0;
        L->p[L->n] = (pattern){s, r, c, h0, nh, ceil_div(s - c, r)};
        L->branch[L->n++] = i;
      }
    }
  }
}

static pattn_status dil_validate(pattn_context *ctx, const pattn_dilated_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                 const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = pattn__check_desc(ctx, OP_DIL, desc, desc ? desc->struct_size : 0, PATTN_DILATED_DESC_MIN_SIZE);
  if (st == PATTN_OK) st = pattn__check_layout(ctx, OP_DIL, desc->layout);
  if (st == PATTN_OK) st = pattn__comm_check_ctx(ctx, OP_DIL, comm);
  if (st == PATTN_OK) st = pattn__check_self_attention(ctx, OP_DIL, desc->layout, q, k, v, out);
  if (st != PATTN_OK) return st;
  int64_t b, h, n, d;
  pattn__dims4(q, desc->layout, &b, &h, &n, &d);
  if ((st = pattn__validate_dilated(ctx, OP_DIL, desc, n * comm->size, h))) return st;
  if (comm->size > 64)
    return pattn__error(ctx, PATTN_ERR_UNSUPPORTED, "%s: comms of more than 64 ranks are not supported yet (got %d)", OP_DIL,
                        comm->size);
  int64_t count = 0;
  for (int i = 0; i < desc->num_segments; i++)
    count += desc->merge == PATTN_DILATED_MERGE_LSE ? (desc->dilation_rates[i] < h ? desc->dilation_rates[i] : h) : 1;
  if (count > 1024)
    return pattn__error(ctx, PATTN_ERR_UNSUPPORTED, "%s: more than 1024 (branch, head block) patterns", OP_DIL);
  return PATTN_OK;
}

pattn_status pattn__ring_dilated_dist(pattn_context *ctx, const pattn_dilated_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                      const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out) {
  dil_bufs bufs;
  memset(&bufs, 0, sizeof bufs);
  static _Thread_local pattern_list L; /* 24 KB: off the stack */
  uint64_t hash = 0xcbf29ce484222325ull;
  dil_run r = {ctx, comm, {comm->rank, comm->size, 0, 0, 0}, &bufs, 0, 0, PATTN_OK};
  int64_t h = 0;
  pattn_status local = dil_validate(ctx, desc, comm, q, k, v, out);
  if (local == PATTN_OK) {
    int64_t d;
    pattn__dims4(q, desc->layout, &r.g.b, &h, &r.g.m, &d);
    r.g.d = d;
    r.scale = pattn__resolve_scale(desc->scale, d);
    r.causal = desc->causal != 0;
    float sc = desc->scale;
    int32_t scale_bits;
    memcpy(&scale_bits, &sc, sizeof scale_bits);
    int64_t opts[] = {2, desc->layout, desc->causal != 0, scale_bits, desc->merge, desc->num_segments};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) hash = pattn__fnv(hash, opts[i]);
    for (int i = 0; i < desc->num_segments; i++) hash = pattn__fnv(pattn__fnv(hash, desc->segment_lengths[i]), desc->dilation_rates[i]);
    hash = pattn__hash_tensor(pattn__hash_tensor(pattn__hash_tensor(pattn__hash_tensor(hash, q), k), v), out);
    list_patterns(desc, h, &L);
    int64_t win = 0, sendn = 0, recvn = 0;
    for (int i = 0; i < L.n; i++) {
      int64_t w, s, rc;
      pattern_sizes(&L.p[i], &r.g, &w, &s, &rc);
      if (w > win) win = w;
      if (s > sendn) sendn = s;
      if (rc > recvn) recvn = rc;
    }
    /* everything up front, so that an allocation failure is agreed before any transfer */
    int64_t one = 1;
    if (win) {
      local = pattn__temp(ctx, k->dtype, 1, &win, &bufs.kw);
      if (local == PATTN_OK) local = pattn__temp(ctx, k->dtype, 1, &win, &bufs.vw);
    }
    if (local == PATTN_OK) local = pattn__temp(ctx, k->dtype, 1, sendn ? &sendn : &one, &bufs.sendp);
    if (local == PATTN_OK) local = pattn__temp(ctx, k->dtype, 1, recvn ? &recvn : &one, &bufs.recvp);
    if (local == PATTN_OK && !comm->device_direct) {
      int64_t mx = sendn > recvn ? sendn : recvn;
      local = pattn__stage_alloc(ctx, &bufs.st, (size_t)mx * pattn_dtype_bytes(k->dtype), 2);
    }
    if (local == PATTN_OK && desc->merge == PATTN_DILATED_MERGE_LSE) {
      int64_t so[4] = {r.g.b, h, r.g.m, d}, sl[4] = {r.g.b, h, r.g.m, 1};
      local = pattn__temp(ctx, PATTN_F32, 4, so, &bufs.acc);
      if (local == PATTN_OK) local = pattn__temp(ctx, PATTN_F32, 4, sl, &bufs.acc_lse);
      if (local == PATTN_OK) local = pattn__temp(ctx, PATTN_F32, 4, so, &bufs.part);
      if (local == PATTN_OK) local = pattn__temp(ctx, PATTN_F32, 4, sl, &bufs.part_lse);
    }
  }
  pattn_status st = pattn__comm_agree(ctx, comm, OP_DIL, local, hash);
  if (st != PATTN_OK) {
    dil_bufs_free(&bufs);
    return st;
  }

  pattn_view qv = pattn__view4(q, desc->layout), kv = pattn__view4(k, desc->layout), vv = pattn__view4(v, desc->layout),
             ov = pattn__view4(out, desc->layout);
  const int64_t b = r.g.b, m = r.g.m, d = r.g.d;
  if (desc->merge == PATTN_DILATED_MERGE_HEAD_GROUPS) {
    note(&r, ctx->be->fill(ctx, &ov, 0.0f));
    float os = 1.0f / (float)desc->num_segments;
    for (int i = 0; i < L.n && st == PATTN_OK; i++) st = run_pattern(&r, &L.p[i], &qv, &kv, &vv, &ov, NULL, os);
  } else {
    pattn_view av = {bufs.acc->buf, PATTN_F32, 0, b, 1, h, m, d, h * m * d, 0, m * d, d};
    pattn_view alv = {bufs.acc_lse->buf, PATTN_F32, 0, b, 1, h, m, 1, h * m, 0, m, 1};
    pattn_view pv = av, plv = alv;
    pv.buf = bufs.part->buf;
    plv.buf = bufs.part_lse->buf;
    note(&r, ctx->be->fill(ctx, &av, 0.0f));
    if (r.cst == PATTN_OK) note(&r, ctx->be->fill(ctx, &alv, -INFINITY));
    for (int i = 0; i < L.n && st == PATTN_OK; i++) {
      if ((i == 0 || L.branch[i] != L.branch[i - 1]) && r.cst == PATTN_OK) {
        note(&r, ctx->be->fill(ctx, &pv, 0.0f));
        if (r.cst == PATTN_OK) note(&r, ctx->be->fill(ctx, &plv, -INFINITY));
      }
      st = run_pattern(&r, &L.p[i], &qv, &kv, &vv, &pv, &plv, 1.0f);
      if ((i + 1 == L.n || L.branch[i + 1] != L.branch[i]) && r.cst == PATTN_OK) note(&r, ctx->be->merge(ctx, &av, &alv, &pv, &plv));
    }
    if (st == PATTN_OK && r.cst == PATTN_OK) note(&r, ctx->be->copy(ctx, &ov, &av, 1.0f));
  }
  dil_bufs_free(&bufs);
  return st != PATTN_OK ? st : r.cst;
}

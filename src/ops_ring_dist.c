/* Distributed ring attention (SPEC.md section 3) over a pattn_comm (comm.h), composed from
 * backend ops like the one-context operators, and the helpers every distributed operator
 * shares (agreement, host staging); ring dilated attention is in ops_ring_dilated_dist.c.
 *
 * No hangs on bad input: every rank validates its own arguments and allocates everything
 * the algorithm needs, then all ranks agree (one allreduce of "my status" and a hash of
 * shapes and options) before the first transfer; a rank that fails there makes every rank
 * return PATTN_ERR_INVALID_ARGUMENT (or its own status). After that the ranks run the same
 * sequence of transfers whatever happens: a backend failure on one rank skips its compute
 * but keeps it exchanging, so the others finish too and the failure is reported where it
 * happened. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "internal.h"

#define OP_RING "ring_attention"

/* ---- agreement ---- */

uint64_t pattn__fnv(uint64_t h, int64_t x) {
  for (int i = 0; i < 8; i++) {
    h ^= (uint64_t)(x >> (8 * i)) & 0xff;
    h *= 0x100000001b3ull;
  }
  return h;
}

/* Every rank passes its local status (validation and allocation) and a hash of what must be
 * equal everywhere; every rank gets the same verdict. */
pattn_status pattn__comm_agree(pattn_context *ctx, pattn_comm *comm, const char *op, pattn_status local, uint64_t hash) {
  int64_t h = (int64_t)(hash >> 1);
  int64_t v[3] = {local != PATTN_OK, h, -h};
  pattn_status st = comm->ops->allreduce_max(comm, ctx, v, 3);
  if (st != PATTN_OK) return st; /* the transport recorded its message on ctx */
  if (local != PATTN_OK) return local; /* this rank's own message stands */
  if (!ctx) return PATTN_ERR_INVALID_ARGUMENT;
  if (v[0])
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                        "%s: another rank of the comm rejected its arguments (its pattn_last_error says why); nothing was computed", op);
  if (v[1] != -v[2])
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                        "%s: the ranks of the comm disagree on shapes, dtype or options (every rank must pass the same "
                        "descriptor and shards of one shape); nothing was computed",
                        op);
  return PATTN_OK;
}

pattn_status pattn__comm_check_ctx(pattn_context *ctx, const char *op, const pattn_comm *comm) {
  if (comm->ctx != ctx)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: comm was created for another context (a comm belongs to one context)", op);
  return PATTN_OK;
}

/* ---- staging: host buffers when the comm cannot take backend buffers ---- */

pattn_status pattn__stage_alloc(pattn_context *ctx, pattn__stage *s, size_t bytes, int nbuf) {
  s->bytes = bytes;
  for (int i = 0; i < nbuf; i++)
    if (!(s->host[i] = malloc(bytes ? bytes : 1)))
      return pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "ring: no %zu bytes of host memory to stage transfers", bytes);
  return PATTN_OK;
}

void *pattn__buf_ptr(const pattn_tensor *t, size_t byte_offset) { return (char *)t->buf + t->byte_offset + byte_offset; }

void pattn__stage_free(pattn__stage *s) {
  free(s->host[0]);
  free(s->host[1]);
}

static pattn_view rows(const pattn_view *v, int64_t first, int64_t count) {
  pattn_view c = *v;
  c.offset += first * v->sn;
  c.n = count;
  return c;
}

/* ---- ring attention ---- */

typedef struct ring_bufs {
  pattn_tensor *acc, *acc_lse, *part, *part_lse;
  pattn_tensor *kb[2], *vb[2]; /* K/V shards received from the ring, double-buffered */
  pattn__stage  st;            /* host staging: [K bytes | V bytes] per side */
} ring_bufs;

static void ring_bufs_free(ring_bufs *r) {
  pattn_tensor_destroy(r->acc);
  pattn_tensor_destroy(r->acc_lse);
  pattn_tensor_destroy(r->part);
  pattn_tensor_destroy(r->part_lse);
  for (int i = 0; i < 2; i++) {
    pattn_tensor_destroy(r->kb[i]);
    pattn_tensor_destroy(r->vb[i]);
  }
  pattn__stage_free(&r->st);
}

typedef struct ring_geo {
  int rank, W, zigzag, causal;
  int64_t nl; /* local positions */
  float scale;
} ring_geo;

/* Global start of local rows [half*a, ...) of rank p's shard (a is 0 or 1 for zigzag). */
static int64_t shard_start(const ring_geo *g, int p, int a) {
  if (!g->zigzag) return (int64_t)p * g->nl;
  int64_t half = g->nl / 2;
  return (a ? (int64_t)(2 * g->W - 1 - p) : (int64_t)p) * half;
}

/* Fold the K/V shard of rank src into the accumulator. */
static pattn_status ring_step(pattn_context *ctx, const ring_geo *g, int src, const pattn_view *q, const pattn_view *k,
                              const pattn_view *v, const pattn_view *av, const pattn_view *alv, const pattn_view *pv,
                              const pattn_view *plv) {
  int parts = g->zigzag && g->causal ? 2 : 1;
  int64_t len = g->nl / parts;
  pattn_status st = PATTN_OK;
  for (int a = 0; a < parts && st == PATTN_OK; a++)
    for (int b = 0; b < parts && st == PATTN_OK; b++) {
      int64_t q0 = parts == 1 ? (int64_t)g->rank * g->nl : shard_start(g, g->rank, a);
      int64_t k0 = parts == 1 ? (int64_t)src * g->nl : shard_start(g, src, b);
      if (g->causal && k0 > q0 + len - 1) continue; /* every key is after every query */
      pattn_view qa = rows(q, a * len, len), oa = rows(pv, a * len, len), la = rows(plv, a * len, len);
      pattn_view aa = rows(av, a * len, len), ala = rows(alv, a * len, len);
      pattn_attn_args args = {qa, rows(k, b * len, len), rows(v, b * len, len), oa, NULL, &la, g->scale, g->causal,
                              q0 - k0, 1.0f, PATTN_ALGO_FLASH, PATTN_PRECISION_DEFAULT};
      st = ctx->be->attention(ctx, &args);
      if (st == PATTN_OK) st = ctx->be->merge(ctx, &aa, &ala, &oa, &la);
    }
  return st;
}

static pattn_status ring_validate(pattn_context *ctx, const pattn_ring_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                  const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out, pattn_tensor *lse) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = pattn__check_desc(ctx, OP_RING, desc, desc ? desc->struct_size : 0, sizeof *desc);
  if (st == PATTN_OK) st = pattn__check_layout(ctx, OP_RING, desc->layout);
  if (st == PATTN_OK) st = pattn__check_scale(ctx, OP_RING, desc->scale);
  if (st == PATTN_OK) st = pattn__comm_check_ctx(ctx, OP_RING, comm);
  if (st == PATTN_OK) st = pattn__check_qkvo(ctx, OP_RING, desc->layout, q, k, v, out, "out");
  if (st != PATTN_OK) return st;
  int64_t b, hq, nq, dk, kb, kh, nk, kd;
  pattn__dims4(q, desc->layout, &b, &hq, &nq, &dk);
  pattn__dims4(k, desc->layout, &kb, &kh, &nk, &kd);
  if (nq != nk)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                        "%s: with a comm, q and k/v are shards of one sequence: q has %lld positions, k %lld", OP_RING,
                        (long long)nq, (long long)nk);
  if (desc->zigzag && nq % 2)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: zigzag needs an even shard length (two chunks per rank), got n=%lld",
                        OP_RING, (long long)nq);
  if (lse && (st = pattn__check_lse(ctx, OP_RING, lse, b, hq, nq))) return st;
  const pattn_tensor *outs[] = {out, lse};
  const char *onames[] = {"out", "lse"};
  const pattn_tensor *all[] = {q, k, v, out, lse};
  const char *anames[] = {"q", "k", "v", "out", "lse"};
  return pattn__check_distinct(ctx, OP_RING, outs, onames, 2, all, anames, 5);
}

uint64_t pattn__hash_tensor(uint64_t h, const pattn_tensor *t) {
  h = pattn__fnv(h, t ? t->ndim : -1);
  if (t) {
    h = pattn__fnv(h, t->dtype);
    for (int i = 0; i < t->ndim; i++) h = pattn__fnv(h, t->shape[i]);
  }
  return h;
}

pattn_status pattn__ring_attention_dist(pattn_context *ctx, const pattn_ring_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                        const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out, pattn_tensor *lse) {
  ring_bufs rb;
  memset(&rb, 0, sizeof rb);
  uint64_t hash = 0xcbf29ce484222325ull;
  const int W = comm->size, rank = comm->rank, direct = comm->device_direct;
  pattn_status local = ring_validate(ctx, desc, comm, q, k, v, out, lse);
  int64_t b = 0, hq = 0, nl = 0, dk = 0, dv = 0;
  if (local == PATTN_OK) {
    int64_t kb, kh, kn, vb, vh, vn;
    pattn__dims4(q, desc->layout, &b, &hq, &nl, &dk);
    pattn__dims4(v, desc->layout, &vb, &vh, &vn, &dv);
    (void)kb, (void)kh, (void)kn, (void)vb, (void)vn;
    float sc = desc->scale;
    int32_t scale_bits;
    memcpy(&scale_bits, &sc, sizeof scale_bits);
    int64_t opts[] = {1, desc->layout, desc->causal != 0, desc->zigzag != 0, scale_bits, lse != NULL};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) hash = pattn__fnv(hash, opts[i]);
    hash = pattn__hash_tensor(pattn__hash_tensor(pattn__hash_tensor(pattn__hash_tensor(pattn__hash_tensor(hash, q), k), v), out), lse);
    /* everything the ring needs, before anyone sends: an allocation failure is agreed too */
    int64_t so[4] = {b, hq, nl, dv}, sl[4] = {b, hq, nl, 1};
    local = pattn__temp(ctx, PATTN_F32, 4, so, &rb.acc);
    if (local == PATTN_OK) local = pattn__temp(ctx, PATTN_F32, 4, sl, &rb.acc_lse);
    if (local == PATTN_OK) local = pattn__temp(ctx, PATTN_F32, 4, so, &rb.part);
    if (local == PATTN_OK) local = pattn__temp(ctx, PATTN_F32, 4, sl, &rb.part_lse);
    for (int i = 0; i < 2 && W > 1 && local == PATTN_OK; i++) {
      local = pattn__temp(ctx, k->dtype, 4, k->shape, &rb.kb[i]);
      if (local == PATTN_OK) local = pattn__temp(ctx, v->dtype, 4, v->shape, &rb.vb[i]);
    }
    if (local == PATTN_OK && W > 1 && !direct) local = pattn__stage_alloc(ctx, &rb.st, k->bytes + v->bytes, 2);
  }
  pattn_status st = pattn__comm_agree(ctx, comm, OP_RING, local, hash);
  if (st != PATTN_OK) {
    ring_bufs_free(&rb);
    return st;
  }

  ring_geo g = {rank, W, desc->zigzag != 0, desc->causal != 0, nl, pattn__resolve_scale(desc->scale, dk)};
  pattn_view qv = pattn__view4(q, desc->layout);
  pattn_view av = {rb.acc->buf, PATTN_F32, 0, b, 1, hq, nl, dv, hq * nl * dv, 0, nl * dv, dv};
  pattn_view alv = {rb.acc_lse->buf, PATTN_F32, 0, b, 1, hq, nl, 1, hq * nl, 0, nl, 1};
  pattn_view pv = av, plv = alv;
  pv.buf = rb.part->buf;
  plv.buf = rb.part_lse->buf;
  /* cst: this rank's backend status; the ring keeps turning after a failure (see top) */
  pattn_status cst = ctx->be->fill(ctx, &av, 0.0f);
  if (cst == PATTN_OK) cst = ctx->be->fill(ctx, &alv, -INFINITY);
  const size_t kbytes = k->bytes, vbytes = v->bytes;
  if (W > 1 && !direct && cst == PATTN_OK) {
    cst = ctx->be->buf_read(ctx, k->buf, k->byte_offset, rb.st.host[0], kbytes);
    if (cst == PATTN_OK) cst = ctx->be->buf_read(ctx, v->buf, v->byte_offset, (char *)rb.st.host[0] + kbytes, vbytes);
  }
  const int next = (rank + 1) % W, prev = (rank + W - 1) % W;
  for (int i = 0; i < W; i++) {
    int cur = i % 2, nxt = (i + 1) % 2, src = (rank - i + W) % W;
    /* the shard for step i+1 travels while step i computes */
    int moving = i + 1 < W;
    if (moving) {
      pattn_comm_xfer x[4];
      int nx = 0;
      if (direct) {
        void *ks = i ? pattn__buf_ptr(rb.kb[cur], 0) : pattn__buf_ptr(k, 0), *vs = i ? pattn__buf_ptr(rb.vb[cur], 0) : pattn__buf_ptr(v, 0);
        x[nx++] = (pattn_comm_xfer){PATTN_COMM_SEND, next, ks, kbytes};
        x[nx++] = (pattn_comm_xfer){PATTN_COMM_SEND, next, vs, vbytes};
        x[nx++] = (pattn_comm_xfer){PATTN_COMM_RECV, prev, pattn__buf_ptr(rb.kb[nxt], 0), kbytes};
        x[nx++] = (pattn_comm_xfer){PATTN_COMM_RECV, prev, pattn__buf_ptr(rb.vb[nxt], 0), vbytes};
      } else {
        x[nx++] = (pattn_comm_xfer){PATTN_COMM_SEND, next, rb.st.host[cur], kbytes + vbytes};
        x[nx++] = (pattn_comm_xfer){PATTN_COMM_RECV, prev, rb.st.host[nxt], kbytes + vbytes};
      }
      if ((st = comm->ops->start(comm, ctx, x, nx)) != PATTN_OK) break;
    }
    if (cst == PATTN_OK) {
      pattn_view kv = pattn__view4(i ? rb.kb[cur] : k, desc->layout), vv = pattn__view4(i ? rb.vb[cur] : v, desc->layout);
      cst = ring_step(ctx, &g, src, &qv, &kv, &vv, &av, &alv, &pv, &plv);
    }
    if (moving) {
      if ((st = comm->ops->wait(comm, ctx)) != PATTN_OK) break;
      if (!direct && cst == PATTN_OK) {
        cst = ctx->be->buf_write(ctx, rb.kb[nxt]->buf, 0, rb.st.host[nxt], kbytes);
        if (cst == PATTN_OK) cst = ctx->be->buf_write(ctx, rb.vb[nxt]->buf, 0, (char *)rb.st.host[nxt] + kbytes, vbytes);
      }
    }
  }
  if (st == PATTN_OK && cst == PATTN_OK) {
    pattn_view ov = pattn__view4(out, desc->layout);
    cst = ctx->be->copy(ctx, &ov, &av, 1.0f);
    if (cst == PATTN_OK && lse) {
      pattn_view lv = pattn__lse_view(lse);
      cst = ctx->be->copy(ctx, &lv, &alv, 1.0f);
    }
  }
  ring_bufs_free(&rb);
  return st != PATTN_OK ? st : cst;
}


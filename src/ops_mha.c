/* Multi-head attention (SPEC.md section 5): projections, optional qk LayerNorm, one of four
 * attention cores on [b, n, h, d] (BNHD) views of the projected tensors, optional
 * sub-LayerNorm (MAGNETO), output projection. Weights live on the device in the module's
 * dtype, as a model's would. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define OP "mha"
enum { WQ, WK, WV, WO, BQ, BK, BV, BO, QN_W, QN_B, KN_W, KN_B, LN_W, LN_B, NWEIGHTS };
static const char *const weight_names[NWEIGHTS] = {
    "q_proj.weight", "k_proj.weight", "v_proj.weight", "out_proj.weight", "q_proj.bias", "k_proj.bias", "v_proj.bias",
    "out_proj.bias", "q_norm.weight", "q_norm.bias",   "k_norm.weight",   "k_norm.bias", "sub_ln.weight", "sub_ln.bias"};

struct pattn_mha {
  pattn_context *ctx;
  int64_t        E;
  int            h;
  pattn_dtype    dtype;
  int            bias, qk_norm, sub_ln;
  pattn_mha_core core;
  union {
    pattn_attention_desc    dense;
    pattn_dilated_desc      dilated;
    pattn_ring_desc         ring;
    pattn_block_sparse_desc sparse;
  } cd;
  int64_t      *seg, *rate; /* copies of the dilated lists */
  pattn_tensor *w[NWEIGHTS];
};

static int weight_enabled(const pattn_mha *m, int i) {
  if (i <= WO) return 1;
  if (i <= BO) return m->bias;
  if (i <= KN_B) return m->qk_norm;
  return m->sub_ln;
}

static pattn_status check_core_desc(pattn_context *ctx, const pattn_mha_desc *d) {
  const void *c = d->core_desc;
  if (!c) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core_desc is NULL", OP);
  size_t got = *(const size_t *)c, want;
  switch (d->core) {
  case PATTN_MHA_DENSE: return pattn__validate_attention_desc(ctx, OP, c);
  case PATTN_MHA_DILATED: want = PATTN_DILATED_DESC_MIN_SIZE; break;
  case PATTN_MHA_RING: want = sizeof(pattn_ring_desc); break;
  case PATTN_MHA_BLOCK_SPARSE: want = sizeof(pattn_block_sparse_desc); break;
  default: return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core=%d is not DENSE, DILATED, RING or BLOCK_SPARSE", OP, (int)d->core);
  }
  pattn_status st = pattn__check_desc(ctx, OP, c, got, want);
  if (st != PATTN_OK) return st;
  if (d->core == PATTN_MHA_DILATED) {
    const pattn_dilated_desc *dd = c;
    /* n is known only at forward: check everything else now (n = lcm-free: use a length every segment divides) */
    if (dd->num_segments < 1 || dd->num_segments > 64)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core_desc num_segments=%d must be in 1..64", OP, dd->num_segments);
    if (!dd->segment_lengths || !dd->dilation_rates)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core_desc %s is NULL", OP,
                          !dd->segment_lengths ? "segment_lengths" : "dilation_rates");
    if (d->num_heads < dd->num_segments)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: num_heads=%d is less than core_desc num_segments=%d", OP,
                          d->num_heads, dd->num_segments);
    if ((st = pattn__check_scale(ctx, OP, dd->scale))) return st;
  } else if (d->core == PATTN_MHA_RING) {
    const pattn_ring_desc *rd = c;
    if (rd->ring_size < 1) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core_desc ring_size=%d must be >= 1", OP, rd->ring_size);
    if ((st = pattn__check_scale(ctx, OP, rd->scale))) return st;
  } else {
    const pattn_block_sparse_desc *bd = c;
    if (!bd->block_layout) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core_desc block_layout is NULL", OP);
    if (bd->block_size < 1) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core_desc block_size=%d must be >= 1", OP, bd->block_size);
    if (bd->layout_heads != 1 && bd->layout_heads != d->num_heads)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: core_desc layout_heads=%d must be 1 or num_heads=%d", OP,
                          bd->layout_heads, d->num_heads);
    if ((st = pattn__check_scale(ctx, OP, bd->scale))) return st;
  }
  return PATTN_OK;
}

void pattn_mha_destroy(pattn_mha *m) {
  if (!m) return;
  for (int i = 0; i < NWEIGHTS; i++) pattn_tensor_destroy(m->w[i]);
  free(m->seg);
  free(m->rate);
  free(m);
}

pattn_status pattn_mha_create(pattn_context *ctx, const pattn_mha_desc *desc, pattn_mha **out) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st == PATTN_OK) st = pattn__check_desc(ctx, OP, desc, desc ? desc->struct_size : 0, sizeof *desc);
  if (st != PATTN_OK) return st;
  if (!out) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: mha (the output pointer) is NULL", OP);
  if (desc->num_heads < 1) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: num_heads=%d must be >= 1", OP, desc->num_heads);
  if (desc->embed_dim < 1 || desc->embed_dim % desc->num_heads)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: embed_dim=%lld must be a positive multiple of num_heads=%d", OP,
                        (long long)desc->embed_dim, desc->num_heads);
  if (desc->embed_dim > (1 << 20))
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: embed_dim=%lld is larger than pattn allows (2^20)", OP,
                        (long long)desc->embed_dim);
  if (!pattn_dtype_size(desc->dtype))
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: dtype=%d is not a pattn_dtype", OP, (int)desc->dtype);
  if ((st = check_core_desc(ctx, desc))) return st;

  pattn_mha *m = calloc(1, sizeof *m);
  if (!m) return pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "%s: out of host memory", OP);
  m->ctx = ctx;
  m->E = desc->embed_dim;
  m->h = desc->num_heads;
  m->dtype = desc->dtype;
  m->bias = desc->bias != 0;
  m->qk_norm = desc->qk_norm != 0;
  m->sub_ln = desc->sub_ln != 0;
  m->core = desc->core;
  switch (m->core) {
  case PATTN_MHA_DENSE: m->cd.dense = *(const pattn_attention_desc *)desc->core_desc; break;
  case PATTN_MHA_RING: m->cd.ring = *(const pattn_ring_desc *)desc->core_desc; break;
  case PATTN_MHA_BLOCK_SPARSE: m->cd.sparse = *(const pattn_block_sparse_desc *)desc->core_desc; break;
  case PATTN_MHA_DILATED: {
    const pattn_dilated_desc *dd = desc->core_desc;
    /* a caller built against an older header has a shorter struct: copy what it has */
    memcpy(&m->cd.dilated, dd, dd->struct_size < sizeof *dd ? dd->struct_size : sizeof *dd);
    m->seg = malloc((size_t)dd->num_segments * sizeof *m->seg);
    m->rate = malloc((size_t)dd->num_segments * sizeof *m->rate);
    if (!m->seg || !m->rate) {
      pattn_mha_destroy(m);
      return pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "%s: out of host memory", OP);
    }
    memcpy(m->seg, dd->segment_lengths, (size_t)dd->num_segments * sizeof *m->seg);
    memcpy(m->rate, dd->dilation_rates, (size_t)dd->num_segments * sizeof *m->rate);
    m->cd.dilated.segment_lengths = m->seg;
    m->cd.dilated.dilation_rates = m->rate;
    break;
  }
  }
  for (int i = 0; i < NWEIGHTS && st == PATTN_OK; i++) {
    if (!weight_enabled(m, i)) continue;
    int64_t shape[2] = {m->E, m->E};
    st = pattn__temp(ctx, m->dtype, i <= WO ? 2 : 1, i <= WO ? shape : shape + 1, &m->w[i]);
  }
  if (st == PATTN_OK) st = pattn_mha_init_xavier(m, 0, 1.0f);
  if (st != PATTN_OK) {
    pattn_mha_destroy(m);
    return st;
  }
  *out = m;
  return PATTN_OK;
}

/* Counter-based normal: the same weights from the same seed on every backend and thread. */
static uint64_t mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static float counter_normal(uint64_t seed, uint64_t stream, uint64_t i) {
  uint64_t a = mix(seed ^ mix(stream * 0x100000001b3ull ^ mix(2 * i))), b = mix(seed ^ mix(stream * 0x100000001b3ull ^ mix(2 * i + 1)));
  double u1 = ((double)(a >> 11) + 0.5) * (1.0 / 9007199254740992.0), u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

pattn_status pattn_mha_init_xavier(pattn_mha *m, uint64_t seed, float gamma) {
  if (!m) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "mha_init_xavier: mha is NULL");
  if (!isfinite(gamma)) return pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT, "mha_init_xavier: gamma=%g is not finite", (double)gamma);
  size_t ee = (size_t)(m->E * m->E);
  float *buf = malloc(ee * sizeof *buf);
  if (!buf) return pattn__error(m->ctx, PATTN_ERR_OUT_OF_MEMORY, "mha_init_xavier: out of host memory");
  /* xavier normal for a square [E, E]: std = gain * sqrt(2 / (E + E)) */
  double std1 = 1.0 / sqrt((double)m->E);
  pattn_status st = PATTN_OK;
  for (int i = 0; i < NWEIGHTS && st == PATTN_OK; i++) {
    if (!m->w[i]) continue;
    size_t count = i <= WO ? ee : (size_t)m->E;
    if (i <= WO) {
      double std = std1 * ((i == WV || i == WO) ? gamma : 1.0);
      for (size_t j = 0; j < count; j++) buf[j] = (float)(std * counter_normal(seed, (uint64_t)i, j));
    } else {
      float fill = (i == QN_W || i == KN_W || i == LN_W) ? 1.0f : 0.0f; /* LayerNorm gains 1, every bias 0 */
      for (size_t j = 0; j < count; j++) buf[j] = fill;
    }
    st = pattn_tensor_write_f32(m->w[i], buf, count);
  }
  free(buf);
  return st;
}

pattn_status pattn_mha_set_weight(pattn_mha *m, const char *name, const float *src, size_t count) {
  if (!m) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "mha_set_weight: mha is NULL");
  if (!name) return pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT, "mha_set_weight: name is NULL");
  if (!src) return pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT, "mha_set_weight: src is NULL");
  for (int i = 0; i < NWEIGHTS; i++) {
    if (strcmp(name, weight_names[i])) continue;
    if (!m->w[i])
      return pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT, "mha_set_weight: name '%s' is not used by this module (%s is off)", name,
                          i <= BO ? "bias" : i <= KN_B ? "qk_norm" : "sub_ln");
    size_t want = (size_t)m->w[i]->numel;
    if (count != want)
      return pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT, "mha_set_weight: count=%zu for '%s', expected %zu", count, name, want);
    return pattn_tensor_write_f32(m->w[i], src, count);
  }
  return pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT,
                      "mha_set_weight: unknown name '%s' (q_proj/k_proj/v_proj/out_proj .weight/.bias, q_norm/k_norm/sub_ln .weight/.bias)",
                      name);
}

static pattn_status linear(pattn_mha *m, int64_t rows, const pattn_tensor *x, int wi, const pattn_tensor *y) {
  pattn_mat none = {NULL, PATTN_F32, 0};
  return m->ctx->be->linear(m->ctx, rows, m->E, m->E, pattn__mat(x), pattn__mat(m->w[wi]),
                            m->w[wi + BQ] ? pattn__mat(m->w[wi + BQ]) : none, pattn__mat(y));
}

static pattn_status layernorm(pattn_mha *m, int64_t rows, const pattn_tensor *x, int wi) {
  return m->ctx->be->layernorm(m->ctx, rows, m->E, 1e-5f, pattn__mat(x), pattn__mat(m->w[wi]), pattn__mat(m->w[wi + 1]), pattn__mat(x));
}

static pattn_status check_x(pattn_mha *m, const char *name, const pattn_tensor *x, int64_t b) {
  pattn_status st = pattn__check_tensor(m->ctx, OP, name, x, 3);
  if (st == PATTN_OK) st = pattn__check_same_dtype(m->ctx, OP, name, x, m->dtype);
  if (st == PATTN_OK && (b >= 0 && x->shape[0] != b))
    st = pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s has batch %lld, expected x_q's %lld", OP, name,
                      (long long)x->shape[0], (long long)b);
  if (st == PATTN_OK && x->shape[2] != m->E)
    st = pattn__error(m->ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: %s has last dim %lld, expected embed_dim %lld", OP, name,
                      (long long)x->shape[2], (long long)m->E);
  return st;
}

/* Check the core's n-dependent constraints before anything is enqueued. */
static pattn_status check_core_lengths(pattn_mha *m, int64_t nq, int64_t nk) {
  pattn_context *ctx = m->ctx;
  switch (m->core) {
  case PATTN_MHA_DILATED:
    if (nq != nk)
      return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: dilated core needs x_q and x_kv of one length (got %lld and %lld)", OP,
                          (long long)nq, (long long)nk);
    return pattn__validate_dilated(ctx, OP, &m->cd.dilated, nq, m->h);
  case PATTN_MHA_RING: return pattn__validate_ring(ctx, OP, &m->cd.ring, nk);
  case PATTN_MHA_BLOCK_SPARSE: return pattn__validate_block_sparse(ctx, OP, &m->cd.sparse, m->h, nq, nk);
  default: return PATTN_OK;
  }
}

pattn_status pattn_mha_forward(pattn_mha *m, const pattn_tensor *x_q, const pattn_tensor *x_kv, pattn_tensor *y) {
  if (!m) return pattn__global_error(PATTN_ERR_INVALID_ARGUMENT, "mha_forward: mha is NULL");
  pattn_context *ctx = m->ctx;
  pattn_status st = check_x(m, "x_q", x_q, -1);
  if (st == PATTN_OK) st = check_x(m, "x_kv", x_kv, x_q->shape[0]);
  if (st == PATTN_OK) st = check_x(m, "y", y, x_q->shape[0]);
  if (st == PATTN_OK && y->shape[1] != x_q->shape[1])
    st = pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: y has length %lld, expected x_q's %lld", OP, (long long)y->shape[1],
                      (long long)x_q->shape[1]);
  if (st == PATTN_OK && (y == x_q || y == x_kv))
    st = pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "%s: y is the same tensor as %s (outputs may not alias)", OP,
                      y == x_q ? "x_q" : "x_kv");
  if (st != PATTN_OK) return st;
  int64_t b = x_q->shape[0], nq = x_q->shape[1], nk = x_kv->shape[1], d = m->E / m->h;
  if ((st = check_core_lengths(m, nq, nk))) return st;

  int64_t sq[4] = {b, nq, m->h, d}, sk[4] = {b, nk, m->h, d};
  pattn_tensor *q = NULL, *k = NULL, *v = NULL, *a = NULL;
  if ((st = pattn__temp(ctx, m->dtype, 4, sq, &q)) || (st = pattn__temp(ctx, m->dtype, 4, sk, &k)) ||
      (st = pattn__temp(ctx, m->dtype, 4, sk, &v)) || (st = pattn__temp(ctx, m->dtype, 4, sq, &a)))
    goto done;
  if ((st = linear(m, b * nq, x_q, WQ, q)) || (st = linear(m, b * nk, x_kv, WK, k)) || (st = linear(m, b * nk, x_kv, WV, v))) goto done;
  if (m->qk_norm && ((st = layernorm(m, b * nq, q, QN_W)) || (st = layernorm(m, b * nk, k, KN_W)))) goto done;

  pattn_view qv = pattn__view4(q, PATTN_LAYOUT_BNHD), kv = pattn__view4(k, PATTN_LAYOUT_BNHD), vv = pattn__view4(v, PATTN_LAYOUT_BNHD),
             av = pattn__view4(a, PATTN_LAYOUT_BNHD);
  switch (m->core) {
  case PATTN_MHA_DENSE:
    st = pattn__run_attention(ctx, &m->cd.dense, pattn__resolve_scale(m->cd.dense.scale, d), &qv, &kv, &vv, NULL, &av, NULL);
    break;
  case PATTN_MHA_DILATED: {
    const pattn_dilated_desc *dd = &m->cd.dilated;
    pattn__dilated_params p = {pattn__resolve_scale(dd->scale, d), dd->causal != 0, dd->num_segments, dd->segment_lengths,
                               dd->dilation_rates, dd->merge, pattn__dilated_gather(dd)};
    st = pattn__run_dilated(ctx, &p, &qv, &kv, &vv, &av);
    break;
  }
  case PATTN_MHA_RING:
    st = pattn__run_ring(ctx, pattn__resolve_scale(m->cd.ring.scale, d), m->cd.ring.causal != 0, m->cd.ring.ring_size, &qv, &kv, &vv,
                         &av, NULL);
    break;
  case PATTN_MHA_BLOCK_SPARSE:
    st = pattn__run_block_sparse(ctx, &m->cd.sparse, pattn__resolve_scale(m->cd.sparse.scale, d), &qv, &kv, &vv, &av);
    break;
  }
  if (st == PATTN_OK && m->sub_ln) st = layernorm(m, b * nq, a, LN_W);
  if (st == PATTN_OK) st = linear(m, b * nq, a, WO, y);
done:
  pattn_tensor_destroy(q);
  pattn_tensor_destroy(k);
  pattn_tensor_destroy(v);
  pattn_tensor_destroy(a);
  return st;
}

/* pattn-bench: create the tensors of one op_spec, run it, and count its work.
 * Only the public API is used, so what is measured is what a user gets. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

size_t dtype_bytes(pattn_dtype dt) { return dt == PATTN_F32 ? 4 : 2; }

const char *dtype_name(pattn_dtype dt) {
  switch (dt) {
  case PATTN_F32: return "f32";
  case PATTN_F16: return "f16";
  case PATTN_BF16: return "bf16";
  }
  return "?";
}

int dtype_parse(const char *s, pattn_dtype *dt) {
  if (!strcmp(s, "f32") || !strcmp(s, "float32")) *dt = PATTN_F32;
  else if (!strcmp(s, "f16") || !strcmp(s, "float16") || !strcmp(s, "half")) *dt = PATTN_F16;
  else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *dt = PATTN_BF16;
  else return -1;
  return 0;
}

int64_t lrpe_rows(const op_spec *s) {
  int64_t n = 1;
  for (int i = 0; i < s->ndims; i++) n *= s->grid[i];
  return s->extra + n;
}

static int64_t lrpe_e(const op_spec *s) {
  int64_t c = (s->d + s->ndims - 1) / s->ndims, e = 1;
  while (e < c) e <<= 1;
  return e;
}

/* ---- host random data: one growing buffer reused by every tensor (values only need to be
 * non-degenerate; regenerating gigabytes per row would dominate the suite's run time) ---- */
static float *g_rand;
static size_t g_rand_n;
static int    g_host_oom; /* the last failure was this host buffer, not pattn */

int ops_host_oom(void) {
  int r = g_host_oom;
  g_host_oom = 0;
  return r;
}

void ops_release_host(void) {
  free(g_rand);
  g_rand = NULL;
  g_rand_n = 0;
}

static const float *rand_floats(size_t n) {
  if (n <= g_rand_n) return g_rand;
  float *p = realloc(g_rand, n * sizeof(float));
  if (!p) {
    g_host_oom = 1;
    return NULL;
  }
  uint64_t x = 0x9E3779B97F4A7C15ull ^ g_rand_n;
  for (size_t i = g_rand_n; i < n; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    /* uniform in [-sqrt(3), sqrt(3)): unit variance, like the seeds' randn inputs */
    p[i] = (float)((double)(x >> 11) * (1.0 / 9007199254740992.0) * 3.4641016 - 1.7320508);
  }
  g_rand = p;
  g_rand_n = n;
  return p;
}

/* ---- op state ---- */
typedef struct op_state {
  pattn_tensor *t[9]; /* q k v out lse dout dq dk dv | x theta out cache | x y, by kind */
  pattn_mha    *mha;
  uint8_t      *layout;
  int64_t       seg[BENCH_MAX_LIST], rate[BENCH_MAX_LIST];
  union {
    pattn_attention_desc    attn;
    pattn_dilated_desc      dil;
    pattn_ring_desc         ring;
    pattn_block_sparse_desc bs;
  } core;
} op_state;

static pattn_status tensor(pattn_context *ctx, pattn_dtype dt, int nd, const int64_t *shape,
                           int fill, pattn_tensor **t) {
  pattn_status st = pattn_tensor_create(ctx, dt, nd, shape, t);
  if (st != PATTN_OK || !fill) return st;
  size_t n = 1;
  for (int i = 0; i < nd; i++) n *= (size_t)shape[i];
  const float *src = rand_floats(n);
  if (!src) return PATTN_ERR_OUT_OF_MEMORY;
  return pattn_tensor_write_f32(*t, src, n);
}

/* q/k/v-shaped tensor in the spec's layout */
static pattn_status qkv(pattn_context *ctx, const op_spec *s, int64_t n, int fill,
                        pattn_tensor **t) {
  int64_t shp[4] = {s->b, s->h, n, s->d};
  if (s->layout == PATTN_LAYOUT_BNHD) { shp[1] = n; shp[2] = s->h; }
  return tensor(ctx, s->dtype, 4, shp, fill, t);
}

/* input `which` (0 q, 1 k, 2 v, 3 dout): the suite's host values where it gave them */
static pattn_status qkv_in(pattn_context *ctx, const op_spec *s, int64_t n, int which,
                           pattn_tensor **t) {
  if (!s->src[which]) return qkv(ctx, s, n, 1, t);
  pattn_status st = qkv(ctx, s, n, 0, t);
  if (st != PATTN_OK) return st;
  return pattn_tensor_write_f32(*t, s->src[which], (size_t)(s->b * s->h * n * s->d));
}

static void fill_core_descs(const op_spec *s, op_state *o) {
  memset(&o->core, 0, sizeof(o->core));
  switch (s->kind == OP_MHA ? (s->mha_core == PATTN_MHA_DENSE     ? OP_ATTN
                               : s->mha_core == PATTN_MHA_DILATED ? OP_DILATED
                               : s->mha_core == PATTN_MHA_RING    ? OP_RING
                                                                  : OP_BLOCK_SPARSE)
                            : s->kind) {
  case OP_ATTN:
  case OP_ATTN_BWD:
    o->core.attn.struct_size = sizeof(pattn_attention_desc);
    o->core.attn.layout = s->layout;
    o->core.attn.causal = s->causal;
    o->core.attn.algo = s->algo;
    o->core.attn.precision = s->precision;
    break;
  case OP_RING:
    o->core.ring.struct_size = sizeof(pattn_ring_desc);
    o->core.ring.layout = s->layout;
    o->core.ring.causal = s->causal;
    o->core.ring.ring_size = s->ring_size;
    break;
  case OP_DILATED:
  case OP_RING_DILATED:
    memcpy(o->seg, s->seg, sizeof(o->seg));
    memcpy(o->rate, s->rate, sizeof(o->rate));
    o->core.dil.struct_size = sizeof(pattn_dilated_desc);
    o->core.dil.layout = s->layout;
    o->core.dil.causal = s->causal;
    o->core.dil.num_segments = s->nseg;
    o->core.dil.segment_lengths = o->seg;
    o->core.dil.dilation_rates = o->rate;
    o->core.dil.merge = s->merge;
    o->core.dil.gather = s->gather;
    break;
  case OP_BLOCK_SPARSE:
    o->core.bs.struct_size = sizeof(pattn_block_sparse_desc);
    o->core.bs.layout = s->layout;
    o->core.bs.causal = s->causal;
    o->core.bs.block_size = s->block_size;
    o->core.bs.layout_heads = 1;
    o->core.bs.block_layout = o->layout;
    break;
  default: break;
  }
}

/* the block layout of a block-sparse spec: local window + dilated rates, shared by heads */
static uint8_t *make_layout(const op_spec *s, int64_t *active) {
  int nqb = (int)((s->nq + s->block_size - 1) / s->block_size);
  int nkb = (int)((s->nk + s->block_size - 1) / s->block_size);
  uint8_t *l = calloc((size_t)nqb * (size_t)nkb, 1);
  if (!l) return NULL;
  pattn_block_layout_local(l, nqb, nkb, s->local_window);
  if (s->nrates > 0) pattn_block_layout_dilated(l, nqb, nkb, s->nrates, s->rates);
  if (s->causal) pattn_block_layout_causal(l, nqb, nkb);
  if (active) {
    int64_t a = 0;
    for (int i = 0; i < nqb * nkb; i++) a += l[i] != 0;
    *active = a;
  }
  return l;
}

pattn_status op_setup(pattn_context *ctx, const op_spec *s, void **state) {
  op_state *o = calloc(1, sizeof(*o));
  pattn_status st = PATTN_OK;
  *state = o;
  if (!o) return PATTN_ERR_OUT_OF_MEMORY;
  if (s->kind == OP_BLOCK_SPARSE || (s->kind == OP_MHA && s->mha_core == PATTN_MHA_BLOCK_SPARSE)) {
    o->layout = make_layout(s, NULL);
    if (!o->layout) return PATTN_ERR_OUT_OF_MEMORY;
  }
  fill_core_descs(s, o);
#define TRY(x) do { if ((st = (x)) != PATTN_OK) return st; } while (0)
  switch (s->kind) {
  case OP_ATTN:
  case OP_RING:
  case OP_DILATED:
  case OP_RING_DILATED:
  case OP_BLOCK_SPARSE:
    TRY(qkv_in(ctx, s, s->nq, 0, &o->t[0]));
    TRY(qkv_in(ctx, s, s->nk, 1, &o->t[1]));
    TRY(qkv_in(ctx, s, s->nk, 2, &o->t[2]));
    TRY(qkv(ctx, s, s->nq, 0, &o->t[3]));
    break;
  case OP_ATTN_BWD: {
    int64_t lshape[3] = {s->b, s->h, s->nq};
    TRY(qkv_in(ctx, s, s->nq, 0, &o->t[0]));
    TRY(qkv_in(ctx, s, s->nk, 1, &o->t[1]));
    TRY(qkv_in(ctx, s, s->nk, 2, &o->t[2]));
    TRY(qkv(ctx, s, s->nq, 0, &o->t[3]));
    TRY(tensor(ctx, PATTN_F32, 3, lshape, 0, &o->t[4]));
    TRY(qkv_in(ctx, s, s->nq, 3, &o->t[5]));
    TRY(qkv(ctx, s, s->nq, 0, &o->t[6]));
    TRY(qkv(ctx, s, s->nk, 0, &o->t[7]));
    TRY(qkv(ctx, s, s->nk, 0, &o->t[8]));
    TRY(pattn_attention(ctx, &o->core.attn, o->t[0], o->t[1], o->t[2], NULL, o->t[3], o->t[4]));
    break;
  }
  case OP_MHA: {
    int64_t E = s->h * s->d, xs[3] = {s->b, s->nq, E};
    pattn_mha_desc md;
    memset(&md, 0, sizeof(md));
    md.struct_size = sizeof(md);
    md.embed_dim = E;
    md.num_heads = (int)s->h;
    md.dtype = s->dtype;
    md.bias = 1;
    md.core = s->mha_core;
    md.core_desc = &o->core;
    TRY(pattn_mha_create(ctx, &md, &o->mha));
    TRY(pattn_mha_init_xavier(o->mha, 1234, 1.0f));
    TRY(tensor(ctx, s->dtype, 3, xs, 1, &o->t[0]));
    TRY(tensor(ctx, s->dtype, 3, xs, 0, &o->t[1]));
    break;
  }
  case OP_LRPE_FWD:
  case OP_LRPE_BWD: {
    int64_t n = lrpe_rows(s), e = lrpe_e(s);
    int64_t xs[4] = {s->b, s->h, n, s->d}, os[4] = {s->b, s->h, n, 2 * s->d};
    int64_t ts[2] = {s->h, e}, cs[3] = {s->h, n, s->d};
    float *th = malloc((size_t)(s->h * e) * sizeof(float));
    if (!th) {
      g_host_oom = 1;
      return PATTN_ERR_OUT_OF_MEMORY;
    }
    for (int64_t i = 0; i < s->h * e; i++) /* LRPE's usual 10000^(-k/e) frequencies */
      th[i] = powf(10000.0f, -(float)(i % e) / (float)e);
    st = pattn_tensor_create(ctx, PATTN_F32, 2, ts, &o->t[1]);
    if (st == PATTN_OK) st = pattn_tensor_write_f32(o->t[1], th, (size_t)(s->h * e));
    free(th);
    if (st != PATTN_OK) return st;
    if (s->use_cache) TRY(tensor(ctx, PATTN_F32, 3, cs, 0, &o->t[3]));
    if (s->kind == OP_LRPE_FWD) {
      TRY(tensor(ctx, s->dtype, 4, xs, 1, &o->t[0]));
      TRY(tensor(ctx, s->dtype, 4, os, 0, &o->t[2]));
    } else {
      if (s->use_cache) { /* the forward fills the cache the backward reads; its x/out go */
        pattn_tensor *x = NULL, *out = NULL;
        st = tensor(ctx, s->dtype, 4, xs, 1, &x);
        if (st == PATTN_OK) st = tensor(ctx, s->dtype, 4, os, 0, &out);
        if (st == PATTN_OK)
          st = pattn_md_lrpe_cosine_forward(ctx, x, o->t[1], s->ndims, s->grid, s->extra, out,
                                            o->t[3]);
        if (st == PATTN_OK) st = pattn_synchronize(ctx);
        pattn_tensor_destroy(x);
        pattn_tensor_destroy(out);
        if (st != PATTN_OK) return st;
      }
      TRY(tensor(ctx, s->dtype, 4, os, 1, &o->t[0])); /* dout */
      TRY(tensor(ctx, s->dtype, 4, xs, 0, &o->t[2])); /* dx */
    }
    break;
  }
  }
#undef TRY
  return pattn_synchronize(ctx);
}

pattn_status op_run(pattn_context *ctx, const op_spec *s, void *state) {
  op_state *o = state;
  pattn_tensor **t = o->t;
  switch (s->kind) {
  case OP_ATTN:
    return pattn_attention(ctx, &o->core.attn, t[0], t[1], t[2], NULL, t[3], NULL);
  case OP_ATTN_BWD:
    return pattn_attention_backward(ctx, &o->core.attn, t[0], t[1], t[2], t[3], t[4], t[5], t[6],
                                    t[7], t[8]);
  case OP_RING:
    return pattn_ring_attention(ctx, &o->core.ring, NULL, t[0], t[1], t[2], t[3], NULL);
  case OP_DILATED:
    return pattn_dilated_attention(ctx, &o->core.dil, t[0], t[1], t[2], t[3]);
  case OP_RING_DILATED:
    return pattn_ring_dilated_attention(ctx, &o->core.dil, NULL, t[0], t[1], t[2], t[3]);
  case OP_BLOCK_SPARSE:
    return pattn_block_sparse_attention(ctx, &o->core.bs, t[0], t[1], t[2], t[3]);
  case OP_MHA:
    return pattn_mha_forward(o->mha, t[0], t[0], t[1]);
  case OP_LRPE_FWD:
    return pattn_md_lrpe_cosine_forward(ctx, t[0], t[1], s->ndims, s->grid, s->extra, t[2],
                                        s->use_cache ? t[3] : NULL);
  case OP_LRPE_BWD:
    return pattn_md_lrpe_cosine_backward(ctx, t[0], t[1], s->ndims, s->grid, s->extra,
                                         s->use_cache ? t[3] : NULL, t[2]);
  }
  return PATTN_ERR_INVALID_ARGUMENT;
}

void op_teardown(void *state) {
  op_state *o = state;
  if (!o) return;
  for (int i = 0; i < 9; i++) pattn_tensor_destroy(o->t[i]);
  pattn_mha_destroy(o->mha);
  free(o->layout);
  free(o);
}

/* ---- work counts ---- */
static double attn_flops(double b, double h, double nq, double nk, double d, int causal) {
  /* QK^T and PV: 2 GEMMs of 2*nq*nk*d each; causal (bottom-right) sees about half */
  double f = 4.0 * b * h * nq * nk * d;
  return causal ? f / 2 : f;
}

/* SPEC.md section 2: positions of segment [0, s) with offset o and rate r */
static double dil_positions(int64_t s, int64_t o, int64_t r) {
  return o >= s ? 0.0 : (double)((s - o + r - 1) / r);
}

static double dilated_flops(const op_spec *s, int64_t h, int64_t d) {
  double f = 0;
  int G = s->nseg;
  for (int i = 0; i < G; i++) {
    double nsegs = (double)(s->nq / s->seg[i]);
    if (s->merge == PATTN_DILATED_MERGE_HEAD_GROUPS) {
      int64_t hg = h / G + (i < h % G);
      double m = dil_positions(s->seg[i], i % s->rate[i], s->rate[i]);
      f += attn_flops((double)s->b, (double)hg, m, m, (double)d, s->causal) * nsegs;
    } else {
      int64_t blk = (h + s->rate[i] - 1) / s->rate[i];
      for (int64_t c = 0; c < s->rate[i] && c * blk < h; c++) {
        int64_t hc = h - c * blk < blk ? h - c * blk : blk;
        double m = dil_positions(s->seg[i], c, s->rate[i]);
        f += attn_flops((double)s->b, (double)hc, m, m, (double)d, s->causal) * nsegs;
      }
    }
  }
  return f;
}

static double block_sparse_flops(const op_spec *s) {
  int64_t active = 0;
  uint8_t *l = make_layout(s, &active);
  free(l);
  double B = (double)s->block_size;
  return 4.0 * (double)s->b * (double)s->h * (double)active * B * B * (double)s->d;
}

double op_flops(const op_spec *s) {
  double b = (double)s->b, h = (double)s->h, nq = (double)s->nq, nk = (double)s->nk;
  double d = (double)s->d;
  switch (s->kind) {
  case OP_ATTN:
  case OP_RING: return attn_flops(b, h, nq, nk, d, s->causal);
  case OP_ATTN_BWD: return 2.5 * attn_flops(b, h, nq, nk, d, s->causal); /* 5 GEMMs vs 2 */
  case OP_DILATED:
  case OP_RING_DILATED: return dilated_flops(s, s->h, s->d);
  case OP_BLOCK_SPARSE: return block_sparse_flops(s);
  case OP_MHA: {
    double E = h * d, proj = 4.0 * 2.0 * b * nq * E * E, core = 0;
    switch (s->mha_core) {
    case PATTN_MHA_DENSE:
    case PATTN_MHA_RING: core = attn_flops(b, h, nq, nq, d, s->causal); break;
    case PATTN_MHA_DILATED: core = dilated_flops(s, s->h, s->d); break;
    case PATTN_MHA_BLOCK_SPARSE: core = block_sparse_flops(s); break;
    }
    return proj + core;
  }
  case OP_LRPE_FWD:
  case OP_LRPE_BWD: return 0; /* memory-bound: reported as GB/s */
  }
  return 0;
}

double op_inputs_bytes(const op_spec *s) {
  double es = (double)dtype_bytes(s->dtype);
  double b = (double)s->b, h = (double)s->h, nq = (double)s->nq, nk = (double)s->nk;
  double d = (double)s->d;
  switch (s->kind) {
  case OP_ATTN:
  case OP_RING:
  case OP_DILATED:
  case OP_RING_DILATED:
  case OP_BLOCK_SPARSE: return es * b * h * d * (2 * nq + 2 * nk);
  case OP_ATTN_BWD: /* q k v out dout dq dk dv, and the f32 lse */
    return es * b * h * d * (4 * nq + 4 * nk) + 4 * b * h * nq;
  case OP_MHA: {
    double E = h * d;
    return es * (2 * b * nq * E + 4 * E * E + 4 * E);
  }
  case OP_LRPE_FWD:
  case OP_LRPE_BWD: {
    double n = (double)lrpe_rows(s);
    return es * b * h * n * 3 * d + (s->use_cache ? 4 * h * n * d : 0) +
           4 * h * (double)lrpe_e(s);
  }
  }
  return 0;
}

double op_bytes(const op_spec *s) {
  double es = (double)dtype_bytes(s->dtype);
  double n = (double)lrpe_rows(s), b = (double)s->b, h = (double)s->h, d = (double)s->d;
  switch (s->kind) {
  case OP_LRPE_FWD: /* read x, write out (2d) and the cache when asked */
    return es * b * h * n * 3 * d + (s->use_cache ? 4 * h * n * d : 0);
  case OP_LRPE_BWD: /* read dout (2d), write dx, read the cache when given */
    return es * b * h * n * 3 * d + (s->use_cache ? 4 * h * n * d : 0);
  default: return op_inputs_bytes(s);
  }
}

double op_estimate_bytes(const op_spec *s) {
  double in = op_inputs_bytes(s);
  double b = (double)s->b, h = (double)s->h, nq = (double)s->nq, nk = (double)s->nk;
  double d = (double)s->d, es = (double)dtype_bytes(s->dtype);
  switch (s->kind) {
  case OP_ATTN:
    /* NAIVE materialises f32 scores; FLASH/AUTO keep tiles */
    return in + (s->algo == PATTN_ALGO_NAIVE ? 4.0 * b * h * nq * nk : 4.0 * b * h * nq * (d + 2));
  case OP_ATTN_BWD: return in + 4.0 * b * h * nq * nk;
  case OP_RING: return in + 4.0 * b * h * nq * (d + 2) * 2;
  case OP_DILATED:
  case OP_RING_DILATED:
  case OP_BLOCK_SPARSE: return in * 3;
  case OP_MHA: return in + 6 * es * b * nq * h * d + 4.0 * b * h * nq * (d + 2) * 2;
  default: return in;
  }
}

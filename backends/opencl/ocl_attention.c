/* Dense and block-sparse attention forward.
 *  FLASH/AUTO: one fused kernel (kernels_cl/attention_flash.cl), tile chosen from the
 *              device's local memory and work-group limits (capabilities, never vendor).
 *  NAIVE:      scores materialised per (batch, segment) by CLBlast strided-batched SGEMMs,
 *              softmax kernel, then P V by SGEMM (the seeds' "standard" path); also the
 *              fallback when no flash tile fits the device (very large head dims).
 * Views are read in place (offsets and strides), so dilated patterns need no gathers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <clblast_c.h>

#include "ocl.h"

#define STD "-cl-std=CL1.2"

typedef struct flash_cfg {
  int bm, bn, tc, dp;
} flash_cfg;

static size_t flash_local_bytes(const flash_cfg *c) {
  size_t ldq = (size_t)c->dp + 4, ldp = (size_t)c->bm + 4;
  return ((size_t)c->bm * ldq + (size_t)c->bn * ldq + (size_t)c->bn * ldp + (size_t)c->bm * c->tc) * sizeof(float);
}

/* f32 view whose float4 loads along a row are 16-byte aligned */
static int vec_ok(const ocl_state *st, const pattn_view *v) {
  if (v->dtype != PATTN_F32 || v->d % 4 != 0 || st->mem_align < 128) return 0;
  return v->offset % 4 == 0 && v->sb % 4 == 0 && v->ss % 4 == 0 && v->sh % 4 == 0 && v->sn % 4 == 0;
}

typedef struct flash_call {
  const pattn_view *q, *k, *v, *out, *mask, *lse;
  float scale, out_scale;
  int causal;
  int64_t coff;
  /* block sparse */
  int sparse, bsz, lay_heads;
  int64_t nqb;
  cl_mem rowptr, cols;
} flash_call;

/* $PATTN_OPENCL_FLASH_TILE="bm,bn,tc" or "bm,bn,tc,dlo,dhi" (query rows, keys per tile,
 * work-items per row; bm a multiple of 4, bn of tc; optionally only for head dims
 * dlo <= d <= dhi) is tried before the built-in list, for tuning sweeps on a GPU, e.g.
 * "32,32,16,65,128" is the previous d = 128 tile. Like every candidate it is used only where
 * it fits the device's local memory and work-group limits. 1 and the tile when it applies. */
static int flash_env_tile(int64_t dmax, int t[3]) {
  const char *env = getenv("PATTN_OPENCL_FLASH_TILE");
  int lo = 0, hi = 1 << 30;
  if (!env) return 0;
  int got = sscanf(env, "%d,%d,%d,%d,%d", &t[0], &t[1], &t[2], &lo, &hi);
  if (got != 3 && got != 5) return 0;
  if (dmax < lo || dmax > hi) return 0;
  return t[0] >= 4 && t[0] % 4 == 0 && t[1] >= 1 && t[2] >= 1 && t[0] <= 256 && t[1] <= 256 && t[2] <= 64;
}

/* Try the candidate tiles in order of preference; 1 and the kernel when one fits.
 * d <= 128 prefers 64 query rows x 16 keys with 8 work-items per row: twice the K/V reuse
 * of 32 x 32 and 4 x 16 outputs per work-item in P V (5 local float4 loads per 64 FMAs, not 3
 * per 32); its local memory (47.5 KiB at d = 128) fits a 48 KiB device, else the next fits. */
static pattn_status flash_kernel(pattn_context *ctx, ocl_state *st, const flash_call *fc, flash_cfg *cfg,
                                 ocl_kernel **kern, int *found) {
  static const int cand_small[][3] = {{64, 32, 4}, {32, 32, 4}, {16, 16, 4}, {8, 8, 4}};
  static const int cand_64[][3] = {{64, 32, 8}, {32, 32, 8}, {16, 16, 4}, {8, 8, 4}};
  static const int cand_128[][3] = {{64, 16, 8}, {32, 32, 16}, {16, 16, 8}, {8, 8, 4}};
  static const int cand_big[][3] = {{16, 16, 16}, {8, 8, 8}, {4, 4, 4}, {4, 4, 4}};
  const int64_t dk = fc->q->d, dv = fc->v->d, dmax = dk > dv ? dk : dv;
  const int(*list)[3] = dmax <= 16 ? cand_small : dmax <= 64 ? cand_64 : dmax <= 128 ? cand_128 : cand_big;
  int cand[5][3], ncand = 0;
  if (flash_env_tile(dmax, cand[0])) ncand = 1;
  for (int c = 0; c < 4; c++, ncand++) memcpy(cand[ncand], list[c], sizeof cand[0]);
  /* d <= 128, short sequences: with 64-row tiles the grid is under two work-groups per
   * compute unit; 32 x 32 x 16 then wins (H200, NVIDIA OpenCL, f32, b=1 h=12 d=128:
   * n=1024 0.323 ms against 0.382; from n=2048, where the grid fills the device, 64 x 16
   * is 1.39x faster) */
  const int64_t units = fc->q->nb * fc->q->ns * fc->q->nh;
  if (list == cand_128 && ncand == 4 && !fc->sparse &&
      (fc->q->n + list[0][0] - 1) / list[0][0] * units < 2 * (int64_t)st->compute_units) {
    memcpy(cand[0], list[1], sizeof cand[0]);
    memcpy(cand[1], list[0], sizeof cand[0]);
  }
  /* Complete unrolling of the kernel's two inner loops (UNROLL_QK: S = Q K^T over d; UNROLL_PV:
   * P V over the tile's keys), H200 through NVIDIA's OpenCL, f32, b=1 h=12, n = 1024..16384,
   * against the compiler's choice (bench/results/2026-11-21-h200/session5/): at d = 128 both
   * took 0.76-0.89x the time (QK alone 0.79-0.94x, PV alone 0.77-1.09x); at d = 64 PV alone took
   * 0.91-0.96x, QK alone 1.14-1.27x and both 1.06-1.16x, so d <= 64 unrolls PV only. Other head
   * dims: not measured, the compiler's choice. */
  const int unroll_qk = list == cand_128, unroll_pv = list == cand_64 || list == cand_128;
  *found = 0;
  for (int c = 0; c < ncand; c++) {
    flash_cfg f = {cand[c][0], cand[c][1], cand[c][2], 0};
    f.dp = (int)ocl_round_up((size_t)dmax, 4u * (size_t)f.tc);
    size_t nt = (size_t)(f.bm / 4) * (size_t)f.tc;
    if (f.bn % f.tc != 0 || nt > st->max_wg || flash_local_bytes(&f) > st->local_mem) continue;
    char opts[640];
    snprintf(opts, sizeof opts,
             STD " -DDT_Q=%s -DDT_K=%s -DDT_V=%s -DDT_O=%s -DDT_M=%s -DDK=%lld -DDV=%lld -DDP=%d -DBM=%d -DBN=%d"
                 " -DRM=4 -DTC=%d -DHAS_MASK=%d -DHAS_LSE=%d -DBLOCK_SPARSE=%d -DVEC_Q=%d -DVEC_K=%d -DVEC_V=%d"
                 " -DUNROLL_QK=%d -DUNROLL_PV=%d",
             ocl_dtype_define(fc->q->dtype), ocl_dtype_define(fc->k->dtype), ocl_dtype_define(fc->v->dtype),
             ocl_dtype_define(fc->out->dtype), ocl_dtype_define(fc->mask ? fc->mask->dtype : PATTN_F32),
             (long long)dk, (long long)dv, f.dp, f.bm, f.bn, f.tc, fc->mask != NULL, fc->lse != NULL, fc->sparse,
             vec_ok(st, fc->q), vec_ok(st, fc->k), vec_ok(st, fc->v), unroll_qk, unroll_pv);
    ocl_kernel *k;
    pattn_status s = ocl_get_kernel(ctx, st, "attention_flash", opts, "attention_flash", &k);
    if (s != PATTN_OK) return s;
    if (k->wg_max < nt) continue; /* too many registers for this tile here: try a smaller one */
    *cfg = f;
    *kern = k;
    *found = 1;
    return PATTN_OK;
  }
  return PATTN_OK;
}

static pattn_status flash_launch(pattn_context *ctx, ocl_state *st, const flash_call *fc, const flash_cfg *cfg,
                                 ocl_kernel *k) {
  const pattn_view *q = fc->q;
  static const pattn_view none = {0};
  const pattn_view *mask = fc->mask ? fc->mask : &none, *lse = fc->lse ? fc->lse : &none;
  cl_mem bq = q->buf, bk = fc->k->buf, bv = fc->v->buf, bo = fc->out->buf, bm = mask->buf, bl = lse->buf;
  cl_long8 vq = ocl_view_arg(q), vk = ocl_view_arg(fc->k), vv = ocl_view_arg(fc->v), vo = ocl_view_arg(fc->out),
           vm = ocl_view_arg(mask), vl = ocl_view_arg(lse);
  cl_int nq = (cl_int)q->n, nk = (cl_int)fc->k->n, ns = (cl_int)q->ns, nh = (cl_int)q->nh,
         group = (cl_int)(q->nh / fc->k->nh), causal = fc->causal, nqb = (cl_int)fc->nqb, bsz = fc->bsz,
         lh = fc->lay_heads;
  cl_long coff = fc->coff;
  float scale = fc->scale, out_scale = fc->out_scale;
  cl_mem rp = fc->rowptr, cols = fc->cols;
  ocl_args a = {k->kern, 0, CL_SUCCESS};
  OCL_ARG(a, bq); OCL_ARG(a, vq); OCL_ARG(a, bk); OCL_ARG(a, vk); OCL_ARG(a, bv); OCL_ARG(a, vv);
  OCL_ARG(a, bo); OCL_ARG(a, vo); OCL_ARG(a, bm); OCL_ARG(a, vm); OCL_ARG(a, bl); OCL_ARG(a, vl);
  OCL_ARG(a, nq); OCL_ARG(a, nk); OCL_ARG(a, ns); OCL_ARG(a, nh); OCL_ARG(a, group); OCL_ARG(a, scale);
  OCL_ARG(a, out_scale); OCL_ARG(a, causal); OCL_ARG(a, coff); OCL_ARG(a, rp); OCL_ARG(a, cols);
  size_t nt = (size_t)(cfg->bm / 4) * (size_t)cfg->tc;
  size_t tiles = fc->sparse ? (size_t)fc->nqb * (((size_t)fc->bsz + (size_t)cfg->bm - 1) / (size_t)cfg->bm)
                            : ((size_t)q->n + (size_t)cfg->bm - 1) / (size_t)cfg->bm;
  cl_int ntiles = (cl_int)tiles;
  OCL_ARG(a, nqb); OCL_ARG(a, bsz); OCL_ARG(a, lh); OCL_ARG(a, ntiles);
  if (a.err != CL_SUCCESS) return ocl_check(ctx, a.err, "attention_flash: clSetKernelArg");
  /* one grid dimension: NVIDIA limits the others to 65535 groups */
  size_t g[1] = {tiles * nt * (size_t)(q->nb * q->ns * q->nh)}, l[1] = {nt};
  (void)st;
  return ocl_launch(ctx, k->kern, 1, g, l, "attention_flash");
}

/* ---- NAIVE: GEMMs + softmax ---- */

/* The (ib, is) slice of x as f32: the view itself when f32, else a converted dense copy in
 * scratch (heads x n x d). base/ld/hs: offset of head 0, row stride, head stride. */
typedef struct f32_slice {
  cl_mem  buf;
  size_t  base, ld, hs;
  cl_mem  scratch;
  size_t  bytes;
} f32_slice;

static pattn_view slice_view(const pattn_view *x, int64_t ib, int64_t is) {
  pattn_view s = *x;
  s.offset = pattn_view_index(x, ib, is, 0, 0, 0);
  s.nb = s.ns = 1;
  return s;
}

static pattn_status get_slice(pattn_context *ctx, const pattn_view *x, int64_t ib, int64_t is, f32_slice *sl) {
  pattn_view s = slice_view(x, ib, is);
  if (x->dtype == PATTN_F32) {
    sl->buf = x->buf;
    sl->base = (size_t)s.offset;
    sl->ld = (size_t)x->sn;
    sl->hs = (size_t)x->sh;
    return PATTN_OK;
  }
  size_t need = (size_t)(x->nh * x->n * x->d) * sizeof(float);
  if (!sl->scratch) {
    pattn_status st = ocl_scratch(ctx, need, &sl->scratch, "naive attention");
    if (st != PATTN_OK) return st;
    sl->bytes = need;
  }
  pattn_view dst = ocl_dense_view(sl->scratch, PATTN_F32, 1, 1, x->nh, x->n, x->d);
  sl->buf = sl->scratch;
  sl->base = 0;
  sl->ld = (size_t)x->d;
  sl->hs = (size_t)(x->n * x->d);
  return ocl_copy(ctx, &dst, &s, 1.0f);
}

static pattn_status naive(pattn_context *ctx, const pattn_attn_args *a) {
  ocl_state *st = ocl_state_of(ctx);
  const pattn_view *q = &a->q, *k = &a->k, *v = &a->v, *out = &a->out;
  const size_t nq = (size_t)q->n, nk = (size_t)k->n, hq = (size_t)q->nh, hkv = (size_t)k->nh;
  const size_t group = hq / hkv;
  size_t wg = 256;
  while (wg > 1 && (wg > st->max_wg || wg / 2 >= nk)) wg /= 2;
  char opts[256];
  snprintf(opts, sizeof opts, STD " -DWG=%zu -DHAS_MASK=%d -DHAS_LSE=%d -DDT_M=%s", wg, a->mask != NULL,
           a->lse != NULL, ocl_dtype_define(a->mask ? a->mask->dtype : PATTN_F32));
  ocl_kernel *sm;
  pattn_status s = ocl_get_kernel(ctx, st, "attention_naive", opts, "softmax_rows", &sm);
  if (s != PATTN_OK) return s;
  if (sm->wg_max < wg)
    return ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl naive attention: work-group %zu too large", wg);

  /* Scores are materialised for a block of kv heads x query rows at a time, at most 1 GiB
   * (2^28 floats) and the device's largest allocation: one block for every head of a long
   * sequence would overflow CLBlast's 32-bit offsets and the allocation limit (n=16384, h=12
   * is 3.2e9 scores). */
  size_t max_floats = (size_t)1 << 28;
  if (st->max_alloc / sizeof(float) < max_floats) max_floats = (size_t)(st->max_alloc / sizeof(float));
  /* test knob: a small block makes the conformance suite cover the blocked path */
  const char *knob = getenv("PATTN_OPENCL_SCORE_BLOCK");
  if (knob && strtoull(knob, NULL, 10) > 0 && strtoull(knob, NULL, 10) < max_floats) max_floats = strtoull(knob, NULL, 10);
  const size_t per_head = group * nk; /* floats per query row for one kv head's group */
  size_t hc = 1, qc = nq;
  if (per_head * nq <= max_floats) hc = max_floats / (per_head * nq) < hkv ? max_floats / (per_head * nq) : hkv;
  else qc = max_floats / per_head ? max_floats / per_head : 1;

  f32_slice sq = {0}, sk = {0}, sv = {0}, so = {0};
  cl_mem S = NULL;
  size_t sbytes = hc * per_head * qc * sizeof(float);
  s = ocl_scratch(ctx, sbytes, &S, "naive attention scores");
  if (s == PATTN_OK && out->dtype != PATTN_F32) {
    so.bytes = hq * nq * (size_t)out->d * sizeof(float);
    s = ocl_scratch(ctx, so.bytes, &so.scratch, "naive attention output");
  }
  static const pattn_view none = {0};
  for (int64_t ib = 0; ib < q->nb && s == PATTN_OK; ib++)
    for (int64_t is = 0; is < q->ns && s == PATTN_OK; is++) {
      s = get_slice(ctx, q, ib, is, &sq);
      if (s == PATTN_OK) s = get_slice(ctx, k, ib, is, &sk);
      if (s == PATTN_OK) s = get_slice(ctx, v, ib, is, &sv);
      pattn_view oslice = slice_view(out, ib, is);
      cl_mem ob = out->dtype == PATTN_F32 ? (cl_mem)out->buf : so.scratch;
      size_t obase = out->dtype == PATTN_F32 ? (size_t)oslice.offset : 0;
      size_t old = out->dtype == PATTN_F32 ? (size_t)out->sn : (size_t)out->d;
      size_t ohs = out->dtype == PATTN_F32 ? (size_t)out->sh : nq * (size_t)out->d;
      for (size_t k0 = 0; k0 < hkv && s == PATTN_OK; k0 += hc)
        for (size_t i0 = 0; i0 < nq && s == PATTN_OK; i0 += qc) {
          const size_t kc = hkv - k0 < hc ? hkv - k0 : hc, rows = nq - i0 < qc ? nq - i0 : qc, h0 = k0 * group;
          for (size_t g = 0; g < group && s == PATTN_OK; g++) {
            CLBlastStatusCode c = CLBlastSgemmStridedBatched(
                CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, rows, nk, (size_t)q->d, 1.0f, sq.buf,
                sq.base + (h0 + g) * sq.hs + i0 * sq.ld, sq.ld, group * sq.hs, sk.buf, sk.base + k0 * sk.hs, sk.ld, sk.hs,
                0.0f, S, g * rows * nk, nk, group * rows * nk, kc, &st->queue, NULL);
            s = ocl_clblast_check(ctx, c, "naive attention: scores SGEMM");
          }
          if (s != PATTN_OK) break;
          /* the block's rows and heads: shift the mask and lse views to its first row and head */
          pattn_view mv = a->mask ? *a->mask : none, lv = a->lse ? *a->lse : none;
          if (a->mask) mv.offset += (int64_t)i0 * mv.sn + (int64_t)h0 * mv.sh;
          if (a->lse) lv.offset += (int64_t)i0 * lv.sn + (int64_t)h0 * lv.sh;
          cl_mem bm = mv.buf, bl = lv.buf;
          cl_long8 vm = ocl_view_arg(&mv), vl = ocl_view_arg(&lv);
          cl_long lib = ib, lis = is, coff = a->causal_offset + (cl_long)i0;
          cl_int inq = (cl_int)rows, ink = (cl_int)nk, causal = a->causal;
          float scale = a->scale;
          ocl_args ar = {sm->kern, 0, CL_SUCCESS};
          OCL_ARG(ar, S); OCL_ARG(ar, bm); OCL_ARG(ar, vm); OCL_ARG(ar, bl); OCL_ARG(ar, vl); OCL_ARG(ar, lib);
          OCL_ARG(ar, lis); OCL_ARG(ar, inq); OCL_ARG(ar, ink); OCL_ARG(ar, scale); OCL_ARG(ar, causal);
          OCL_ARG(ar, coff);
          s = ocl_check(ctx, ar.err, "softmax_rows: clSetKernelArg");
          size_t gs[2] = {wg * rows, kc * group}, ls[2] = {wg, 1};
          if (s == PATTN_OK) s = ocl_launch(ctx, sm->kern, 2, gs, ls, "softmax_rows");
          /* O = out_scale * P V, into out directly when it is f32 */
          for (size_t g = 0; g < group && s == PATTN_OK; g++) {
            CLBlastStatusCode c = CLBlastSgemmStridedBatched(
                CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, rows, (size_t)v->d, nk, a->out_scale, S,
                g * rows * nk, nk, group * rows * nk, sv.buf, sv.base + k0 * sv.hs, sv.ld, sv.hs, 0.0f, ob,
                obase + (h0 + g) * ohs + i0 * old, old, group * ohs, kc, &st->queue, NULL);
            s = ocl_clblast_check(ctx, c, "naive attention: output SGEMM");
          }
        }
      if (s == PATTN_OK && out->dtype != PATTN_F32) {
        pattn_view src = ocl_dense_view(so.scratch, PATTN_F32, 1, 1, out->nh, out->n, out->d);
        s = ocl_copy(ctx, &oslice, &src, 1.0f);
      }
    }
  ocl_scratch_free(ctx, S, sbytes);
  ocl_scratch_free(ctx, sq.scratch, sq.bytes);
  ocl_scratch_free(ctx, sk.scratch, sk.bytes);
  ocl_scratch_free(ctx, sv.scratch, sv.bytes);
  ocl_scratch_free(ctx, so.scratch, so.bytes);
  return s;
}

/* No keys at all: every row is empty (out = 0, lse = -inf). */
static pattn_status empty_rows(pattn_context *ctx, const pattn_view *out, const pattn_view *lse) {
  pattn_status s = ocl_fill(ctx, out, 0.0f);
  if (s == PATTN_OK && lse) s = ocl_fill(ctx, lse, -INFINITY);
  return s;
}

pattn_status ocl_attention(pattn_context *ctx, const pattn_attn_args *a) {
  ocl_state *st = ocl_state_of(ctx);
  if (a->q.n == 0 || a->q.nb == 0 || a->q.ns == 0 || a->q.nh == 0) return PATTN_OK;
  if (a->k.nh <= 0 || a->q.nh % a->k.nh != 0)
    return ocl_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "opencl attention: %lld query heads over %lld kv heads",
                           (long long)a->q.nh, (long long)a->k.nh);
  if (a->k.n == 0) return empty_rows(ctx, &a->out, a->lse);
  if (a->algo == PATTN_ALGO_NAIVE) return naive(ctx, a);
  flash_call fc = {&a->q, &a->k, &a->v, &a->out, a->mask, a->lse, a->scale, a->out_scale, a->causal,
                   a->causal_offset, 0, 0, 1, 0, NULL, NULL};
  flash_cfg cfg;
  ocl_kernel *k = NULL;
  int found = 0;
  pattn_status s = flash_kernel(ctx, st, &fc, &cfg, &k, &found);
  if (s != PATTN_OK) return s;
  if (!found) {
    ocl_core->log(PATTN_LOG_DEBUG, "opencl: no flash tile fits head dim %lld here; using NAIVE", (long long)a->q.d);
    return naive(ctx, a);
  }
  return flash_launch(ctx, st, &fc, &cfg, k);
}

/* Active blocks of each (layout head, query block) as CSR, uploaded for the kernel, so the
 * work follows the active blocks rather than nq * nk. */
pattn_status ocl_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a) {
  ocl_state *st = ocl_state_of(ctx);
  if (a->q.n == 0 || a->q.nb == 0 || a->q.nh == 0) return PATTN_OK;
  if (a->k.nh <= 0 || a->q.nh % a->k.nh != 0 || a->block_size <= 0)
    return ocl_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "opencl block-sparse: bad heads or block size");
  const int64_t lh = a->layout_heads > 1 ? a->layout_heads : 1, nqb = a->nqb, nkb = a->nkb;
  size_t nrp = (size_t)(lh * (nqb + 1)), ncols = 0;
  for (int64_t i = 0; i < lh * nqb * nkb; i++) ncols += a->layout[i] != 0;
  cl_int *rp = malloc(nrp * sizeof(cl_int)), *cols = malloc((ncols ? ncols : 1) * sizeof(cl_int));
  if (!rp || !cols) {
    free(rp);
    free(cols);
    return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl block-sparse: out of memory");
  }
  size_t at = 0;
  for (int64_t h = 0; h < lh; h++)
    for (int64_t I = 0; I < nqb; I++) {
      rp[h * (nqb + 1) + I] = (cl_int)at;
      const uint8_t *row = a->layout + (h * nqb + I) * nkb;
      for (int64_t J = 0; J < nkb; J++)
        if (row[J]) cols[at++] = (cl_int)J;
      rp[h * (nqb + 1) + I + 1] = (cl_int)at;
    }
  if (!ncols) cols[0] = 0;
  size_t rbytes = nrp * sizeof(cl_int), cbytes = (ncols ? ncols : 1) * sizeof(cl_int);
  cl_mem brp = NULL, bcols = NULL;
  pattn_status s = ocl_scratch(ctx, rbytes, &brp, "block-sparse layout");
  if (s == PATTN_OK) s = ocl_scratch(ctx, cbytes, &bcols, "block-sparse layout");
  if (s == PATTN_OK)
    s = ocl_check(ctx, clEnqueueWriteBuffer(st->queue, brp, CL_TRUE, 0, rbytes, rp, 0, NULL, NULL), "block-sparse upload");
  if (s == PATTN_OK)
    s = ocl_check(ctx, clEnqueueWriteBuffer(st->queue, bcols, CL_TRUE, 0, cbytes, cols, 0, NULL, NULL),
                  "block-sparse upload");
  free(rp);
  free(cols);
  if (s == PATTN_OK) {
    flash_call fc = {&a->q, &a->k, &a->v, &a->out, NULL, NULL, a->scale, 1.0f, a->causal, a->causal_offset,
                     1, a->block_size, (int)lh, nqb, brp, bcols};
    flash_cfg cfg;
    ocl_kernel *k = NULL;
    int found = 0;
    s = flash_kernel(ctx, st, &fc, &cfg, &k, &found);
    if (s == PATTN_OK && !found)
      s = ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl block-sparse: head dim %lld does not fit this device",
                          (long long)a->q.d);
    if (s == PATTN_OK) s = flash_launch(ctx, st, &fc, &cfg, k);
  }
  ocl_scratch_free(ctx, brp, rbytes);
  ocl_scratch_free(ctx, bcols, cbytes);
  return s;
}

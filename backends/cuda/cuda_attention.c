/* CUDA backend: dense attention (fused flash kernel, or materialised scores through cuBLAS
 * for algo NAIVE and head dims the flash kernel has no variant for), block-sparse attention
 * (the flash kernel over a list of active kv tiles), and the backward pass (fused: f16/bf16 on
 * tensor cores in flash_mma_bwd.cu where it applies, else f32 FMA in flash_bwd.cu; cuBLAS GEMMs
 * on f32 workspaces for TF32 and what neither kernel covers; all chunked over (batch, segment)
 * units to bound memory). */
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

/* Workspace budget of the materialised paths; one unit is always processed even if it
 * needs more. */
#define MATERIALISED_BUDGET ((size_t)1 << 30)

static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* Column-major strided-batched SGEMM, C = alpha op(A) op(B); empty products skipped. */
static pattn_status sgemm(pattn_context *ctx, cuda_state *st, int ta, int tb, int64_t m, int64_t n, int64_t k,
                          float alpha, const float *A, int64_t lda, int64_t sA, const float *B, int64_t ldb, int64_t sB,
                          float *C, int64_t ldc, int64_t sC, int64_t batch, const char *what) {
  if (m <= 0 || n <= 0 || batch <= 0 || k <= 0) return PATTN_OK; /* C was zeroed by the caller where it matters */
  if (m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff || batch > 0x7fffffff)
    return cuda_core->error(ctx, PATTN_ERR_UNSUPPORTED, "cuda %s: GEMM dimensions beyond 2^31", what);
  const float zero = 0.0f;
  CUBLAS_TRY(ctx,
             cublasSgemmStridedBatched(st->blas, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, (int)m,
                                       (int)n, (int)k, &alpha, A, (int)imax(lda, 1), sA, B, (int)imax(ldb, 1), sB, &zero,
                                       C, (int)imax(ldc, 1), sC, (int)batch),
             what);
  return PATTN_OK;
}

/* Units of (batch, segment) per chunk for a per-unit footprint of `floats`. */
static int64_t chunk_units(int64_t units, size_t floats) {
  size_t per = floats * sizeof(float);
  int64_t nu = per ? (int64_t)(MATERIALISED_BUDGET / per) : units;
  if (nu < 1) nu = 1;
  return nu < units ? nu : units;
}

/* ---- materialised forward ---- */

static pattn_status naive_forward(pattn_context *ctx, cuda_state *st, const pattn_attn_args *a) {
  const pattn_view *q = &a->q, *k = &a->k, *v = &a->v;
  const int64_t U = q->nb * q->ns, H = q->nh, group = q->nh / k->nh;
  const int64_t nq = q->n, nk = k->n, dk = q->d, dv = v->d;
  const size_t fq = (size_t)(H * nq * dk), fk = (size_t)(H * nk * dk), fv = (size_t)(H * nk * dv);
  const size_t fs = (size_t)(H * nq * nk), fo = (size_t)(H * nq * dv);
  const int64_t nu = chunk_units(U, fq + fk + fv + fs + fo);
  const size_t bytes = (size_t)nu * (fq + fk + fv + fs + fo) * sizeof(float) + 256;
  void *ws;
  pattn_status s = cuda_ws_alloc(ctx, bytes, &ws, "attention (materialised)");
  if (s != PATTN_OK) return s;
  float *Qf = ws, *Kf = Qf + nu * fq, *Vf = Kf + nu * fk, *S = Vf + nu * fv, *Of = S + nu * fs;
  pcu_view mask = cuda_view_opt(a->mask), lse = cuda_view_opt(a->lse);
  cublasStatus_t mb = cublasSetMathMode(st->blas, a->precision == PATTN_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                          : CUBLAS_DEFAULT_MATH);
  if (mb != CUBLAS_STATUS_SUCCESS) { s = cublas_fail(ctx, mb, "attention: math mode"); goto done; }
  for (int64_t u0 = 0; u0 < U && s == PATTN_OK; u0 += nu) {
    const int64_t cu = U - u0 < nu ? U - u0 : nu, batch = cu * H;
    cudaError_t e = pcu_gather(st->stream, Qf, cuda_view(q), u0, cu, H, 1);
    if (!e) e = pcu_gather(st->stream, Kf, cuda_view(k), u0, cu, H, group);
    if (!e) e = pcu_gather(st->stream, Vf, cuda_view(v), u0, cu, H, group);
    if (!e) e = cudaMemsetAsync(S, 0, (size_t)cu * fs * sizeof(float), st->stream);
    if (!e) e = cudaMemsetAsync(Of, 0, (size_t)cu * fo * sizeof(float), st->stream);
    if (e) { s = cuda_fail(ctx, e, "attention (materialised): staging"); break; }
    /* S[nq][nk] = scale * Q K^T */
    s = sgemm(ctx, st, 1, 0, nk, nq, dk, a->scale, Kf, dk, nk * dk, Qf, dk, nq * dk, S, nk, nq * nk, batch, "attention QK^T");
    if (s != PATTN_OK) break;
    e = pcu_softmax_rows(st->stream, S, u0, cu, H, nq, nk, q->ns, mask, lse, a->causal, a->causal_offset);
    if (e) { s = cuda_fail(ctx, e, "attention softmax"); break; }
    /* O[nq][dv] = P V */
    s = sgemm(ctx, st, 0, 0, dv, nq, nk, 1.0f, Vf, dv, nk * dv, S, nk, nq * nk, Of, dv, nq * dv, batch, "attention PV");
    if (s != PATTN_OK) break;
    e = pcu_scatter(st->stream, cuda_view(&a->out), Of, u0, cu, 1, a->out_scale);
    if (e) { s = cuda_fail(ctx, e, "attention (materialised): store"); break; }
  }
done:
  (void)cublasSetMathMode(st->blas, CUBLAS_DEFAULT_MATH);
  cuda_ws_free(ctx, ws, bytes);
  return s;
}

/* ---- fused forward ---- */

static pcu_flash_args flash_args(const pattn_view *q, const pattn_view *k, const pattn_view *v, const pattn_view *out,
                                 float scale, int causal, int64_t causal_offset) {
  pcu_flash_args f;
  memset(&f, 0, sizeof f);
  f.q = cuda_view(q); f.k = cuda_view(k); f.v = cuda_view(v); f.out = cuda_view(out);
  f.scale = scale; f.out_scale = 1.0f;
  f.causal = causal; f.causal_offset = causal_offset;
  return f;
}

/* PATTN_CUDA_F32_FLASH=fma: f32 inputs take the FMA kernel (flash.cu) instead of the tensor-core
 * one (flash_tf32.cu). A temporary knob for benchmarking the two, read on every call. */
static int f32_flash_fma(void) {
  const char *e = getenv("PATTN_CUDA_F32_FLASH");
  return e && strcmp(e, "fma") == 0;
}

/* PATTN_CUDA_TF32_F16=0: PATTN_PRECISION_TF32 on the H100/H200 through the tf32 and split bf16
 * wgmma kernels instead of scaled f16 copies. A temporary knob for benchmarking them. */
static int tf32_f16_off(void) {
  const char *e = getenv("PATTN_CUDA_TF32_F16");
  return e && e[0] == '0';
}

/* cuda_enter, then the head counts every dense attention entry point needs: the query heads
 * a whole number of groups over the kv heads. */
static pattn_status attention_enter(pattn_context *ctx, cuda_state **st, const pattn_view *q, const pattn_view *k,
                                    const char *what) {
  pattn_status s = cuda_enter(ctx, st);
  if (s != PATTN_OK) return s;
  if (k->nh <= 0 || q->nh % k->nh != 0)
    return cuda_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "cuda %s: %lld query heads over %lld kv heads", what,
                            (long long)q->nh, (long long)k->nh);
  return PATTN_OK;
}

pattn_status cuda_attention(pattn_context *ctx, const pattn_attn_args *a) {
  cuda_state *st = NULL;
  pattn_status s = attention_enter(ctx, &st, &a->q, &a->k, "attention");
  if (s != PATTN_OK) return s;
  int bm, bn;
  if (a->algo == PATTN_ALGO_NAIVE || pcu_flash_plan(a->q.d, a->v.d, st->smem_optin, &bm, &bn) != 0)
    return naive_forward(ctx, st, a);
  pcu_flash_args f = flash_args(&a->q, &a->k, &a->v, &a->out, a->scale, a->causal, a->causal_offset);
  f.mask = cuda_view_opt(a->mask);
  f.lse = cuda_view_opt(a->lse);
  f.out_scale = a->out_scale;
  f.num_sms = st->num_sms;
  int e = pcu_flash_wgmma_forward(st->stream, &f, st->cc, st->smem_optin);
  if (e == (int)cudaErrorNotSupported) e = pcu_flash_mma_forward(st->stream, &f, st->cc, st->smem_optin);
  const int tf32 = a->precision == PATTN_PRECISION_TF32;
  if (e == (int)cudaErrorNotSupported && tf32 && !f32_flash_fma() && !tf32_f16_off()) {
    /* TF32 on Hopper: the f16 kernel over scaled f16 copies, through a workspace */
    int64_t nbc = 0;
    int variant = -1;
    const size_t bytes = pcu_flash_wgmma_tf32_plan(&f, st->cc, st->smem_optin, &variant, &nbc);
    void *ws = NULL;
    /* no room for the copies: the kernels below need no workspace */
    if (bytes && cuda_ws_alloc(ctx, bytes, &ws, "attention (TF32 f16 copies)") == PATTN_OK) {
      e = pcu_flash_wgmma_tf32(st->stream, &f, variant, ws, nbc);
      cuda_ws_free(ctx, ws, bytes);
    }
  }
  if (e == (int)cudaErrorNotSupported && !f32_flash_fma())
    e = pcu_flash_wgmma_f32_forward(st->stream, &f, st->cc, st->smem_optin, tf32);
  if (e == (int)cudaErrorNotSupported && !f32_flash_fma()) {
    /* a small grid splits the keys over more blocks, through a workspace for the partial results */
    pcu_tf32_plan plan;
    e = pcu_flash_tf32_plan(&f, st->cc, st->smem_optin, tf32, &plan);
    if (e == 0) {
      void *ws = NULL;
      if (plan.ws_bytes) {
        s = cuda_ws_alloc(ctx, plan.ws_bytes, &ws, "attention (f32 key split)");
        if (s != PATTN_OK) return s;
      }
      e = pcu_flash_tf32_forward(st->stream, &f, &plan, ws);
      cuda_ws_free(ctx, ws, plan.ws_bytes);
    }
  }
  if (e == (int)cudaErrorNotSupported) e = pcu_flash_forward(st->stream, &f, st->smem_optin);
  CU_TRY(ctx, e, "attention (flash)");
  return PATTN_OK;
}

/* ---- block-sparse ---- */

/* The kv tiles each (layout head, query tile) must visit, as CSR, followed by the layout
 * itself, in one host block: [ptr: lh*nqt+1 ints][idx: ints][layout bytes]. */
static void *build_tiles(const pattn_block_sparse_args *a, int bm, int bn, int64_t nqt, int64_t nkt, size_t *bytes,
                         size_t *layout_at, size_t *idx_at) {
  const int64_t lh = a->layout_heads > 1 ? a->layout_heads : 1, B = a->block_size;
  const int64_t nq = a->q.n, nk = a->k.n;
  uint8_t *mark = calloc((size_t)nkt + 1, 1);
  int *ptr = malloc(((size_t)(lh * nqt) + 1) * sizeof(int));
  size_t cap = 1024, used = 0;
  int *idx = malloc(cap * sizeof(int));
  if (!mark || !ptr || !idx) goto fail;
  ptr[0] = 0;
  for (int64_t h = 0; h < lh; h++)
    for (int64_t qt = 0; qt < nqt; qt++) {
      memset(mark, 0, (size_t)nkt);
      int64_t r0 = qt * bm, r1 = (qt + 1) * bm < nq ? (qt + 1) * bm : nq;
      for (int64_t I = r0 / B; I <= (r1 - 1) / B && I < a->nqb; I++) {
        const uint8_t *row = a->layout + (h * a->nqb + I) * a->nkb;
        for (int64_t J = 0; J < a->nkb; J++) {
          if (!row[J]) continue;
          int64_t j0 = J * B, j1 = (J + 1) * B < nk ? (J + 1) * B : nk;
          for (int64_t t = j0 / bn; j0 < j1 && t <= (j1 - 1) / bn; t++) mark[t] = 1;
        }
      }
      for (int64_t t = 0; t < nkt; t++) {
        if (!mark[t]) continue;
        if (used == cap) {
          int *grown = realloc(idx, 2 * cap * sizeof(int));
          if (!grown) goto fail;
          idx = grown;
          cap *= 2;
        }
        idx[used++] = (int)t;
      }
      ptr[h * nqt + qt + 1] = (int)used;
    }
  {
    size_t nptr = (size_t)(lh * nqt) + 1, lay = (size_t)(lh * a->nqb * a->nkb);
    *idx_at = nptr * sizeof(int);
    *layout_at = *idx_at + used * sizeof(int);
    *bytes = *layout_at + lay + 1;
    char *blob = malloc(*bytes);
    if (!blob) goto fail;
    memcpy(blob, ptr, nptr * sizeof(int));
    memcpy(blob + *idx_at, idx, used * sizeof(int));
    memcpy(blob + *layout_at, a->layout, lay);
    free(mark); free(ptr); free(idx);
    return blob;
  }
fail:
  free(mark); free(ptr); free(idx);
  return NULL;
}

pattn_status cuda_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a) {
  cuda_state *st = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK) return s;
  if (a->k.nh <= 0 || a->q.nh % a->k.nh != 0 || a->block_size <= 0)
    return cuda_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "cuda block-sparse: bad heads or block size");
  int bm, bn;
  if (pcu_flash_plan(a->q.d, a->v.d, st->smem_optin, &bm, &bn) != 0)
    return cuda_core->error(ctx, PATTN_ERR_UNSUPPORTED,
                            "cuda block-sparse: head dims %lld/%lld exceed what the fused kernel holds on this device",
                            (long long)a->q.d, (long long)a->v.d);
  const int64_t nqt = (a->q.n + bm - 1) / bm, nkt = (a->k.n + bn - 1) / bn;
  if (a->q.n == 0) return PATTN_OK;
  size_t bytes = 0, layout_at = 0, idx_at = 0;
  void *blob = build_tiles(a, bm, bn, nqt, nkt, &bytes, &layout_at, &idx_at);
  if (!blob) return cuda_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "cuda block-sparse: out of host memory");
  void *dev;
  s = cuda_ws_alloc(ctx, bytes, &dev, "block-sparse tile list");
  if (s != PATTN_OK) { free(blob); return s; }
  /* pageable source: the call returns once blob is staged, so it may be freed after */
  cudaError_t e = cudaMemcpyAsync(dev, blob, bytes, cudaMemcpyHostToDevice, st->stream);
  free(blob);
  if (e == cudaSuccess) {
    pcu_flash_args f = flash_args(&a->q, &a->k, &a->v, &a->out, a->scale, a->causal, a->causal_offset);
    f.layout = (const uint8_t *)dev + layout_at;
    f.layout_heads = a->layout_heads;
    f.nqb = a->nqb; f.nkb = a->nkb;
    f.block_size = a->block_size;
    f.tile_ptr = (const int *)dev;
    f.tile_idx = (const int *)((const char *)dev + idx_at);
    e = pcu_flash_forward(st->stream, &f, st->smem_optin);
  }
  if (e != cudaSuccess) s = cuda_fail(ctx, e, "block-sparse attention");
  cuda_ws_free(ctx, dev, bytes);
  return s;
}

/* ---- backward ---- */

/* dq, dk, dv of units u0 .. u0+cu-1 from dense f32 [cu][H][n][d] gradients (dK and dV per
 * query head: summed over each GQA group of `group` heads), in the views' dtypes. */
static cudaError_t store_grads(cuda_state *st, const pattn_attn_bwd_args *a, const float *dQf, const float *dKf,
                               const float *dVf, int64_t u0, int64_t cu, int64_t group) {
  cudaError_t e = pcu_scatter(st->stream, cuda_view(&a->dq), dQf, u0, cu, 1, 1.0f);
  if (!e) e = pcu_scatter(st->stream, cuda_view(&a->dk), dKf, u0, cu, group, 1.0f);
  if (!e) e = pcu_scatter(st->stream, cuda_view(&a->dv), dVf, u0, cu, group, 1.0f);
  return e;
}

/* cuBLAS GEMMs on f32 workspaces (any dtype, TF32 on request), O(n^2) workspace per unit. */
static pattn_status gemm_backward(pattn_context *ctx, cuda_state *st, const pattn_attn_bwd_args *a) {
  pattn_status s = PATTN_OK;
  const pattn_view *q = &a->q, *k = &a->k, *v = &a->v;
  const int64_t U = q->nb * q->ns, H = q->nh, group = q->nh / k->nh;
  const int64_t nq = q->n, nk = k->n, dk = q->d, dv = v->d;
  const size_t fq = (size_t)(H * nq * dk), fk = (size_t)(H * nk * dk), fv = (size_t)(H * nk * dv);
  const size_t fdo = (size_t)(H * nq * dv), fr = (size_t)(H * nq), fs = (size_t)(H * nq * nk);
  /* Q K V dO lse D S dP dQ dK dV */
  const size_t per = fq + fk + fv + fdo + 2 * fr + 2 * fs + fq + fk + fv;
  const int64_t nu = chunk_units(U, per);
  const size_t bytes = (size_t)nu * per * sizeof(float) + 256;
  void *ws;
  s = cuda_ws_alloc(ctx, bytes, &ws, "attention backward");
  if (s != PATTN_OK) return s;
  float *Qf = ws, *Kf = Qf + nu * fq, *Vf = Kf + nu * fk, *dOf = Vf + nu * fv, *Lf = dOf + nu * fdo, *Df = Lf + nu * fr;
  float *S = Df + nu * fr, *dP = S + nu * fs, *dQf = dP + nu * fs, *dKf = dQf + nu * fq, *dVf = dKf + nu * fk;
  cublasStatus_t mb = cublasSetMathMode(st->blas, a->precision == PATTN_PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                                          : CUBLAS_DEFAULT_MATH);
  if (mb != CUBLAS_STATUS_SUCCESS) { s = cublas_fail(ctx, mb, "attention backward: math mode"); goto done; }
  for (int64_t u0 = 0; u0 < U && s == PATTN_OK; u0 += nu) {
    const int64_t cu = U - u0 < nu ? U - u0 : nu, batch = cu * H;
    cudaError_t e = pcu_gather(st->stream, Qf, cuda_view(q), u0, cu, H, 1);
    if (!e) e = pcu_gather(st->stream, Kf, cuda_view(k), u0, cu, H, group);
    if (!e) e = pcu_gather(st->stream, Vf, cuda_view(v), u0, cu, H, group);
    if (!e) e = pcu_gather(st->stream, dOf, cuda_view(&a->dout), u0, cu, H, 1);
    if (!e) e = pcu_gather(st->stream, Lf, cuda_view(&a->lse), u0, cu, H, 1);
    if (!e) e = pcu_rowdot(st->stream, Df, cuda_view(&a->dout), cuda_view(&a->out), u0, cu);
    /* zero what an empty product (nq, nk or d = 0) would leave unwritten */
    if (!e) e = cudaMemsetAsync(S, 0, (size_t)cu * 2 * fs * sizeof(float), st->stream);
    if (!e) e = cudaMemsetAsync(dQf, 0, (size_t)cu * (fq + fk + fv) * sizeof(float), st->stream);
    if (e) { s = cuda_fail(ctx, e, "attention backward: staging"); break; }
    s = sgemm(ctx, st, 1, 0, nk, nq, dk, a->scale, Kf, dk, nk * dk, Qf, dk, nq * dk, S, nk, nq * nk, batch, "backward QK^T");
    if (s == PATTN_OK)
      s = sgemm(ctx, st, 1, 0, nk, nq, dv, 1.0f, Vf, dv, nk * dv, dOf, dv, nq * dv, dP, nk, nq * nk, batch, "backward dO V^T");
    if (s != PATTN_OK) break;
    e = pcu_softmax_bwd(st->stream, S, dP, Lf, Df, batch * nq, nq, nk, a->scale, a->causal, a->causal_offset);
    if (e) { s = cuda_fail(ctx, e, "attention backward: dS"); break; }
    s = sgemm(ctx, st, 0, 1, dv, nk, nq, 1.0f, dOf, dv, nq * dv, S, nk, nq * nk, dVf, dv, nk * dv, batch, "backward dV");
    if (s == PATTN_OK)
      s = sgemm(ctx, st, 0, 0, dk, nq, nk, 1.0f, Kf, dk, nk * dk, dP, nk, nq * nk, dQf, dk, nq * dk, batch, "backward dQ");
    if (s == PATTN_OK)
      s = sgemm(ctx, st, 0, 1, dk, nk, nq, 1.0f, Qf, dk, nq * dk, dP, nk, nq * nk, dKf, dk, nk * dk, batch, "backward dK");
    if (s != PATTN_OK) break;
    e = store_grads(st, a, dQf, dKf, dVf, u0, cu, group);
    if (e) { s = cuda_fail(ctx, e, "attention backward: store"); break; }
  }
done:
  (void)cublasSetMathMode(st->blas, CUBLAS_DEFAULT_MATH);
  cuda_ws_free(ctx, ws, bytes);
  return s;
}

/* Whether a fused backward kernel may write gradient view g itself (pcu_bwd_grad_row): every
 * row start on an even element, so element pairs are 4- or 8-byte aligned. */
static int grad_direct(const pattn_view *g) {
  const size_t esize = g->dtype == PATTN_F32 ? 4 : 2;
  return ((uintptr_t)g->buf % (2 * esize)) == 0 && g->offset % 2 == 0 && g->sn % 2 == 0 && g->sh % 2 == 0 &&
         g->ss % 2 == 0 && g->sb % 2 == 0;
}

/* Fused backward, on tensor cores (mma != 0: flash_wgmma_bwd.cu where it applies, else
 * flash_mma_bwd.cu) or in f32 FMA (flash_bwd.cu):
 * D = rowdot(dout, out), the kernel accumulates dQ (atomically) into an f32 workspace and
 * writes dK, dV: without GQA straight to the gradients' views, else per query head into f32
 * workspaces; pcu_scatter converts the workspaces to the gradients' views (summing dK, dV over
 * each GQA group). O(n) workspace per unit; chunked over units like the cuBLAS path. */
static pattn_status fused_backward(pattn_context *ctx, cuda_state *st, const pattn_attn_bwd_args *a, pcu_flash_bwd_args *f,
                                   int mma) {
  const pattn_view *q = &a->q, *k = &a->k, *v = &a->v;
  const int64_t U = q->nb * q->ns, H = q->nh, group = q->nh / k->nh;
  const int64_t nq = q->n, nk = k->n, dk = q->d, dv = v->d;
  const int direct = group == 1 && grad_direct(&a->dk) && grad_direct(&a->dv);
  const size_t fq = (size_t)(H * nq * dk), fr = (size_t)(H * nq);
  const size_t fk = direct ? 0 : (size_t)(H * nk * dk), fv = direct ? 0 : (size_t)(H * nk * dv);
  if (direct) {
    f->gk = cuda_view(&a->dk);
    f->gv = cuda_view(&a->dv);
  }
  /* dQ [dK dV] D; dQ first (float2 atomics want it 8-byte aligned) */
  const size_t per = fq + fk + fv + fr;
  const int64_t nu = chunk_units(U, per);
  const size_t bytes = (size_t)nu * per * sizeof(float) + 256;
  void *ws;
  pattn_status s = cuda_ws_alloc(ctx, bytes, &ws, "attention backward");
  if (s != PATTN_OK) return s;
  float *dQf = ws, *dKf = dQf + nu * fq, *dVf = dKf + nu * fk, *Df = dVf + nu * fv;
  for (int64_t u0 = 0; u0 < U; u0 += nu) {
    const int64_t cu = U - u0 < nu ? U - u0 : nu;
    cudaError_t e = cudaMemsetAsync(dQf, 0, (size_t)cu * fq * sizeof(float), st->stream);
    if (!e) e = pcu_rowdot(st->stream, Df, cuda_view(&a->dout), cuda_view(&a->out), u0, cu);
    if (e) { s = cuda_fail(ctx, e, "attention backward: staging"); break; }
    f->delta = Df; f->dq = dQf; f->dk = dKf; f->dv = dVf;
    f->u0 = u0; f->nu = cu;
    int r = mma ? pcu_flash_wgmma_backward(st->stream, f, st->cc, st->smem_optin)
                : pcu_flash_fma_backward(st->stream, f, st->smem_optin);
    if (mma && r == (int)cudaErrorNotSupported) r = pcu_flash_mma_backward(st->stream, f, st->cc, st->smem_optin);
    e = (cudaError_t)r;
    if (e) { s = cuda_fail(ctx, e, mma ? "attention backward (fused, tensor cores)" : "attention backward (fused)"); break; }
    e = direct ? (cudaError_t)pcu_scatter(st->stream, cuda_view(&a->dq), dQf, u0, cu, 1, 1.0f)
               : store_grads(st, a, dQf, dKf, dVf, u0, cu, group);
    if (e) { s = cuda_fail(ctx, e, "attention backward: store"); break; }
  }
  cuda_ws_free(ctx, ws, bytes);
  return s;
}

/* PATTN_CUDA_BWD=gemm: the cuBLAS path (gemm_backward) for every input; =fma: the f32 FMA
 * kernel wherever it applies, also for f16/bf16 where the tensor-core one would (how the H200
 * tests the path that sm_61-75 devices take). TEMPORARY knobs for A/B measurement, read on
 * every call; remove them with the cuBLAS path's use for f16/bf16 once the fused kernels are
 * measured. */
static const char *bwd_forced(void) {
  const char *e = getenv("PATTN_CUDA_BWD");
  return e ? e : "";
}

/* Where the FMA kernel and cuBLAS both apply, cuBLAS was the faster on the H200 for head dims
 * above 64 without causal masking and above 128 with it (f32, FlashAttention's benchmark
 * shapes, bench/results/2026-11-21-h200/session4/): 1.4-1.9x at d=128, 2.2-5x at d=256 without
 * causal; 1.4-1.9x at d=256 with it. The FMA kernel was the faster below (1.1-1.4x at d=64,
 * 1.9-2.6x at d=64 causal, 1.05-1.2x at d=128 causal): causal halves its work only. */
static int gemm_faster(const pattn_attn_bwd_args *a) {
  const int64_t dmax = a->q.d > a->v.d ? a->q.d : a->v.d;
  return dmax > 128 || (dmax > 64 && !a->causal);
}

/* Without PATTN_PRECISION_TF32, head dims up to 256: f16/bf16 on sm_80+ take the tensor-core
 * kernel; the rest (f32; any dtype before sm_80) the FMA kernel where its tile fits the shared
 * memory, or cuBLAS where that was measured faster (gemm_faster) unless cuBLAS's O(n^2)
 * workspace does not fit the device; TF32, larger head dims and the knob: cuBLAS. */
pattn_status cuda_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a) {
  cuda_state *st = NULL;
  pattn_status s = attention_enter(ctx, &st, &a->q, &a->k, "attention backward");
  if (s != PATTN_OK) return s;
  const char *forced = bwd_forced();
  if (a->precision != PATTN_PRECISION_TF32 && strcmp(forced, "gemm") != 0) {
    pcu_flash_bwd_args f;
    memset(&f, 0, sizeof f);
    f.q = cuda_view(&a->q); f.k = cuda_view(&a->k); f.v = cuda_view(&a->v); f.dout = cuda_view(&a->dout);
    f.lse = cuda_view(&a->lse);
    f.scale = a->scale;
    f.causal = a->causal;
    f.causal_offset = a->causal_offset;
    f.nu = a->q.nb * a->q.ns; /* the largest chunk possible (a conservative check) */
    const int fma = strcmp(forced, "fma") == 0;
    if (!fma && pcu_flash_mma_backward_supported(&f, st->cc, st->smem_optin)) return fused_backward(ctx, st, a, &f, 1);
    if (pcu_flash_fma_backward_supported(&f, st->smem_optin)) {
      if (!fma && gemm_faster(a)) {
        s = gemm_backward(ctx, st, a);
        if (s != PATTN_ERR_OUT_OF_MEMORY) return s;
        /* out of memory (its O(n^2) workspace, first of all): the fused kernel needs O(n) and
         * writes every gradient element, whatever the cuBLAS path left */
      }
      return fused_backward(ctx, st, a, &f, 0);
    }
  }
  return gemm_backward(ctx, st, a);
}

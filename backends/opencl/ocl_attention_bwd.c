/* Dense attention backward (kernels_cl/attention_backward.cl): D = rowdot(dout, out), then
 * dK/dV owned per key row and dQ owned per query row, no atomics (deterministic). The
 * streamed tile size BT is the largest power of two whose two tiles fit local memory. */
#include <stdio.h>

#include "ocl.h"

#define STD "-cl-std=CL1.2"

static pattn_status get(pattn_context *ctx, ocl_state *st, const pattn_attn_bwd_args *a, size_t bt, const char *name,
                        ocl_kernel **k) {
  char opts[512];
  int64_t dp = a->q.d > a->v.d ? a->q.d : a->v.d;
  snprintf(opts, sizeof opts,
           STD " -DDT_Q=%s -DDT_K=%s -DDT_V=%s -DDT_O=%s -DDT_DO=%s -DDT_DQ=%s -DDT_DK=%s -DDT_DV=%s"
               " -DDK=%lld -DDV=%lld -DDP=%lld -DBT=%zu",
           ocl_dtype_define(a->q.dtype), ocl_dtype_define(a->k.dtype), ocl_dtype_define(a->v.dtype),
           ocl_dtype_define(a->out.dtype), ocl_dtype_define(a->dout.dtype), ocl_dtype_define(a->dq.dtype),
           ocl_dtype_define(a->dk.dtype), ocl_dtype_define(a->dv.dtype), (long long)a->q.d, (long long)a->v.d,
           (long long)dp, bt);
  return ocl_get_kernel(ctx, st, "attention_backward", opts, name, k);
}

pattn_status ocl_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a) {
  ocl_state *st = ocl_state_of(ctx);
  const pattn_view *q = &a->q, *k = &a->k;
  if (q->nb == 0 || q->ns == 0 || q->nh == 0) return PATTN_OK;
  if (k->nh <= 0 || q->nh % k->nh != 0)
    return ocl_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "opencl attention backward: %lld query heads over %lld kv heads",
                           (long long)q->nh, (long long)k->nh);
  if (a->lse.dtype != PATTN_F32)
    return ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl attention backward: lse must be f32");
  const size_t dp = (size_t)(q->d > a->v.d ? q->d : a->v.d);
  size_t bt = 64;
  while (bt > 1 && (bt > st->max_wg || (2 * bt * dp + 2 * bt) * sizeof(float) > st->local_mem)) bt /= 2;

  ocl_kernel *kdot, *kkv = NULL, *kq = NULL;
  pattn_status s = get(ctx, st, a, bt, "bwd_dot", &kdot);
  /* a kernel's own limit (registers) may be below the device's: shrink the tile until both fit */
  while (s == PATTN_OK) {
    s = get(ctx, st, a, bt, "bwd_dkdv", &kkv);
    if (s == PATTN_OK) s = get(ctx, st, a, bt, "bwd_dq", &kq);
    if (s != PATTN_OK || (kkv->wg_max >= bt && kq->wg_max >= bt)) break;
    if (bt == 1) return ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl attention backward: no work-group fits");
    bt /= 2;
  }
  if (s != PATTN_OK) return s;

  size_t rows = (size_t)(q->nb * q->ns * q->nh), dbytes = rows * (size_t)q->n * sizeof(float);
  cl_mem D = NULL;
  s = ocl_scratch(ctx, dbytes, &D, "attention backward");
  if (s != PATTN_OK) return s;

  cl_mem bq = q->buf, bk = k->buf, bv = a->v.buf, bo = a->out.buf, bdo = a->dout.buf, bl = a->lse.buf,
         bdq = a->dq.buf, bdk = a->dk.buf, bdv = a->dv.buf;
  cl_long8 vq = ocl_view_arg(q), vk = ocl_view_arg(k), vv = ocl_view_arg(&a->v), vo = ocl_view_arg(&a->out),
           vdo = ocl_view_arg(&a->dout), vl = ocl_view_arg(&a->lse), vdq = ocl_view_arg(&a->dq),
           vdk = ocl_view_arg(&a->dk), vdv = ocl_view_arg(&a->dv);
  cl_int nq = (cl_int)q->n, nk = (cl_int)k->n, ns = (cl_int)q->ns, nh = (cl_int)q->nh, nkvh = (cl_int)k->nh,
         group = (cl_int)(q->nh / k->nh), causal = a->causal;
  cl_long coff = a->causal_offset;
  float scale = a->scale;

  ocl_args ad = {kdot->kern, 0, CL_SUCCESS};
  OCL_ARG(ad, bo); OCL_ARG(ad, vo); OCL_ARG(ad, bdo); OCL_ARG(ad, vdo); OCL_ARG(ad, D); OCL_ARG(ad, nq);
  cl_long total = (cl_long)rows * q->n;
  OCL_ARG(ad, ns); OCL_ARG(ad, nh); OCL_ARG(ad, total);
  s = ocl_check(ctx, ad.err, "bwd_dot: clSetKernelArg");
  if (s == PATTN_OK) s = ocl_launch_1d(ctx, kdot, (size_t)total, "bwd_dot");

  if (s == PATTN_OK) {
    ocl_args ak = {kkv->kern, 0, CL_SUCCESS};
    OCL_ARG(ak, bq); OCL_ARG(ak, vq); OCL_ARG(ak, bk); OCL_ARG(ak, vk); OCL_ARG(ak, bv); OCL_ARG(ak, vv);
    OCL_ARG(ak, bdo); OCL_ARG(ak, vdo); OCL_ARG(ak, bl); OCL_ARG(ak, vl); OCL_ARG(ak, D); OCL_ARG(ak, bdk);
    OCL_ARG(ak, vdk); OCL_ARG(ak, bdv); OCL_ARG(ak, vdv); OCL_ARG(ak, nq); OCL_ARG(ak, nk); OCL_ARG(ak, ns);
    OCL_ARG(ak, nh); OCL_ARG(ak, nkvh); OCL_ARG(ak, group); OCL_ARG(ak, scale); OCL_ARG(ak, causal);
    cl_int ntiles = (cl_int)(ocl_round_up((size_t)k->n, bt) / bt);
    OCL_ARG(ak, coff); OCL_ARG(ak, ntiles);
    s = ocl_check(ctx, ak.err, "bwd_dkdv: clSetKernelArg");
    size_t g[1] = {(size_t)ntiles * bt * (size_t)(q->nb * q->ns * k->nh)}, l[1] = {bt};
    if (s == PATTN_OK) s = ocl_launch(ctx, kkv->kern, 1, g, l, "bwd_dkdv");
  }
  if (s == PATTN_OK) {
    ocl_args aq = {kq->kern, 0, CL_SUCCESS};
    OCL_ARG(aq, bq); OCL_ARG(aq, vq); OCL_ARG(aq, bk); OCL_ARG(aq, vk); OCL_ARG(aq, bv); OCL_ARG(aq, vv);
    OCL_ARG(aq, bdo); OCL_ARG(aq, vdo); OCL_ARG(aq, bl); OCL_ARG(aq, vl); OCL_ARG(aq, D); OCL_ARG(aq, bdq);
    OCL_ARG(aq, vdq); OCL_ARG(aq, nq); OCL_ARG(aq, nk); OCL_ARG(aq, ns); OCL_ARG(aq, nh); OCL_ARG(aq, group);
    cl_int ntiles = (cl_int)(ocl_round_up((size_t)q->n, bt) / bt);
    OCL_ARG(aq, scale); OCL_ARG(aq, causal); OCL_ARG(aq, coff); OCL_ARG(aq, ntiles);
    s = ocl_check(ctx, aq.err, "bwd_dq: clSetKernelArg");
    size_t g[1] = {(size_t)ntiles * bt * rows}, l[1] = {bt};
    if (s == PATTN_OK) s = ocl_launch(ctx, kq->kern, 1, g, l, "bwd_dq");
  }
  ocl_scratch_free(ctx, D, dbytes);
  return s;
}

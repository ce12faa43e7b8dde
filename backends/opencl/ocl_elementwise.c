/* fill, copy, merge, layernorm and md-LRPE launches (kernels_cl/elementwise.cl, layernorm.cl,
 * lrpe.cl). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ocl.h"

#define STD "-cl-std=CL1.2"

pattn_status ocl_fill(pattn_context *ctx, const pattn_view *dst, float value) {
  ocl_state *st = ocl_state_of(ctx);
  char opts[128];
  snprintf(opts, sizeof opts, STD " -DDT_DST=%s", ocl_dtype_define(dst->dtype));
  ocl_kernel *k;
  pattn_status s = ocl_get_kernel(ctx, st, "elementwise", opts, "fill", &k);
  if (s != PATTN_OK) return s;
  cl_mem b = dst->buf;
  cl_long8 vd = ocl_view_arg(dst);
  cl_long ns = dst->ns, nh = dst->nh, n = dst->n, d = dst->d, total = dst->nb * dst->ns * dst->nh * dst->n * dst->d;
  ocl_args a = {k->kern, 0, CL_SUCCESS};
  OCL_ARG(a, b); OCL_ARG(a, vd); OCL_ARG(a, ns); OCL_ARG(a, nh); OCL_ARG(a, n); OCL_ARG(a, d); OCL_ARG(a, value);
  OCL_ARG(a, total);
  if (a.err != CL_SUCCESS) return ocl_check(ctx, a.err, "fill: clSetKernelArg");
  return ocl_launch_1d(ctx, k, (size_t)total, "fill");
}

pattn_status ocl_copy(pattn_context *ctx, const pattn_view *dst, const pattn_view *src, float alpha) {
  ocl_state *st = ocl_state_of(ctx);
  char opts[128];
  snprintf(opts, sizeof opts, STD " -DDT_DST=%s -DDT_SRC=%s", ocl_dtype_define(dst->dtype),
           ocl_dtype_define(src->dtype));
  ocl_kernel *k;
  pattn_status s = ocl_get_kernel(ctx, st, "elementwise", opts, "copy", &k);
  if (s != PATTN_OK) return s;
  cl_mem bd = dst->buf, bs = src->buf;
  cl_long8 vd = ocl_view_arg(dst), vs = ocl_view_arg(src);
  cl_long ns = dst->ns, nh = dst->nh, n = dst->n, d = dst->d, total = dst->nb * dst->ns * dst->nh * dst->n * dst->d;
  ocl_args a = {k->kern, 0, CL_SUCCESS};
  OCL_ARG(a, bd); OCL_ARG(a, vd); OCL_ARG(a, bs); OCL_ARG(a, vs); OCL_ARG(a, ns); OCL_ARG(a, nh); OCL_ARG(a, n);
  OCL_ARG(a, d); OCL_ARG(a, alpha); OCL_ARG(a, total);
  if (a.err != CL_SUCCESS) return ocl_check(ctx, a.err, "copy: clSetKernelArg");
  return ocl_launch_1d(ctx, k, (size_t)total, "copy");
}

pattn_status ocl_merge(pattn_context *ctx, const pattn_view *acc_out, const pattn_view *acc_lse,
                       const pattn_view *part_out, const pattn_view *part_lse) {
  ocl_state *st = ocl_state_of(ctx);
  if (acc_out->dtype != PATTN_F32 || acc_lse->dtype != PATTN_F32 || part_out->dtype != PATTN_F32 ||
      part_lse->dtype != PATTN_F32)
    return ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl merge: views must be f32");
  ocl_kernel *k;
  pattn_status s = ocl_get_kernel(ctx, st, "elementwise", STD, "merge", &k);
  if (s != PATTN_OK) return s;
  cl_mem b0 = acc_out->buf, b1 = acc_lse->buf, b2 = part_out->buf, b3 = part_lse->buf;
  cl_long8 v0 = ocl_view_arg(acc_out), v1 = ocl_view_arg(acc_lse), v2 = ocl_view_arg(part_out),
           v3 = ocl_view_arg(part_lse);
  cl_long ns = acc_out->ns, nh = acc_out->nh, n = acc_out->n, total = acc_out->nb * acc_out->ns * acc_out->nh * acc_out->n;
  cl_int d = (cl_int)acc_out->d;
  ocl_args a = {k->kern, 0, CL_SUCCESS};
  OCL_ARG(a, b0); OCL_ARG(a, v0); OCL_ARG(a, b1); OCL_ARG(a, v1); OCL_ARG(a, b2); OCL_ARG(a, v2);
  OCL_ARG(a, b3); OCL_ARG(a, v3); OCL_ARG(a, ns); OCL_ARG(a, nh); OCL_ARG(a, n); OCL_ARG(a, d); OCL_ARG(a, total);
  if (a.err != CL_SUCCESS) return ocl_check(ctx, a.err, "merge: clSetKernelArg");
  return ocl_launch_1d(ctx, k, (size_t)total, "merge");
}

pattn_status ocl_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps, pattn_mat x,
                           pattn_mat gamma, pattn_mat beta, pattn_mat y) {
  ocl_state *st = ocl_state_of(ctx);
  if (rows <= 0 || cols <= 0) return PATTN_OK;
  /* a power of two no larger than the device allows nor the row needs */
  size_t wg = 256;
  while (wg > 1 && (wg > st->max_wg || wg / 2 >= (size_t)cols)) wg /= 2;
  char opts[256];
  snprintf(opts, sizeof opts, STD " -DDT_X=%s -DDT_Y=%s -DDT_G=%s -DDT_B=%s -DHAS_GAMMA=%d -DHAS_BETA=%d -DWG=%zu",
           ocl_dtype_define(x.dtype), ocl_dtype_define(y.dtype), ocl_dtype_define(gamma.dtype),
           ocl_dtype_define(beta.dtype), gamma.buf != NULL, beta.buf != NULL, wg);
  ocl_kernel *k;
  pattn_status s = ocl_get_kernel(ctx, st, "layernorm", opts, "layernorm", &k);
  if (s != PATTN_OK) return s;
  if (k->wg_max < wg)
    return ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl layernorm: work-group of %zu exceeds the kernel's %zu",
                           wg, k->wg_max);
  cl_mem bx = x.buf, bg = gamma.buf, bb = beta.buf, by = y.buf;
  cl_long xo = x.offset, go = gamma.offset, bo = beta.offset, yo = y.offset, c = cols;
  ocl_args a = {k->kern, 0, CL_SUCCESS};
  OCL_ARG(a, bx); OCL_ARG(a, xo); OCL_ARG(a, bg); OCL_ARG(a, go); OCL_ARG(a, bb); OCL_ARG(a, bo);
  OCL_ARG(a, by); OCL_ARG(a, yo); OCL_ARG(a, c); OCL_ARG(a, eps);
  if (a.err != CL_SUCCESS) return ocl_check(ctx, a.err, "layernorm: clSetKernelArg");
  size_t g[1] = {(size_t)rows * wg}, l[1] = {wg};
  return ocl_launch(ctx, k->kern, 1, g, l, "layernorm");
}

/* Widest of 8, 4, 2, 1 columns that every view offset, d and e are multiples of: the kernel's
 * vector loads then stay aligned (buffer bases are at least CL_DEVICE_MEM_BASE_ADDR_ALIGN). */
static int lrpe_vec(const ocl_state *st, const pattn_lrpe_args *p) {
  for (int v = 8; v > 1; v /= 2) {
    if (st->mem_align < (cl_uint)v * 32u) continue; /* bits: v floats (the f32 cache) */
    if (p->d % v || p->e % v || p->in.offset % v || p->out.offset % v) continue;
    if (p->cache.buf && p->cache.offset % v) continue;
    return v;
  }
  return 1;
}

/* Batch rows per work-item. Each work-item computes its sin/cos once for all the rows it
 * handles, so as many as possible; but at least about max_compute_units * max_wg work-items
 * (a full device with several loads in flight each), else small grids leave most of the
 * device idle. The forward pass writes twice what it reads and wants more work-items in
 * flight: at most 2 rows each (H200, NVIDIA OpenCL, bf16 seed-002 sizes: median 63% of the
 * copy bandwidth with 2 rows against 55% with all 12 and 46% with 1; the backward pass is
 * best with the default: 81% against 72% with 2). $PATTN_OPENCL_LRPE_BPC=k forces k rows
 * (for tuning sweeps). */
static cl_uint lrpe_bpc(const ocl_state *st, int64_t items, int64_t nb, int forward) {
  const char *env = getenv("PATTN_OPENCL_LRPE_BPC");
  if (env && atoi(env) > 0) return (cl_uint)(atoi(env) < nb ? atoi(env) : nb);
  int64_t target = (int64_t)st->compute_units * (int64_t)st->max_wg;
  int64_t chunks = items >= target ? 1 : (target + items - 1) / items;
  if (chunks > nb) chunks = nb;
  int64_t bpc = (nb + chunks - 1) / chunks;
  if (forward && bpc > 2) bpc = 2;
  return (cl_uint)bpc;
}

static pattn_status lrpe(pattn_context *ctx, const pattn_lrpe_args *p, int forward) {
  ocl_state *st = ocl_state_of(ctx);
  if (p->b <= 0 || p->h <= 0 || p->n <= 0 || p->d <= 0) return PATTN_OK;
  /* the kernel's index math is 32-bit: every count below 2^31 */
  if (p->b > INT32_MAX || p->h > INT32_MAX || p->n > INT32_MAX || 2 * p->d > INT32_MAX || p->e > INT32_MAX ||
      p->h * p->b > INT32_MAX)
    return ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl lrpe: sizes beyond 2^31");
  if (p->cache.buf && p->cache.dtype != PATTN_F32)
    return ocl_core->error(ctx, PATTN_ERR_UNSUPPORTED, "opencl lrpe: the angle cache must be f32");
  const int vec = lrpe_vec(st, p);
  char opts[256];
  snprintf(opts, sizeof opts, STD " -DDT_IN=%s -DDT_TH=%s -DDT_OUT=%s -DHAS_CACHE=%d -DVEC=%d",
           ocl_dtype_define(p->in.dtype), ocl_dtype_define(p->theta.dtype), ocl_dtype_define(p->out.dtype),
           p->cache.buf != NULL, vec);
  ocl_kernel *k;
  const char *name = forward ? "lrpe_forward" : "lrpe_backward";
  pattn_status s = ocl_get_kernel(ctx, st, "lrpe", opts, name, &k);
  if (s != PATTN_OK) return s;
  cl_mem bi = p->in.buf, bt = p->theta.buf, bo = p->out.buf, bc = p->cache.buf;
  cl_long io = p->in.offset, to = p->theta.offset, oo = p->out.offset, co = p->cache.offset;
  const size_t nkc = (size_t)(p->d / vec);
  cl_uint bpc = lrpe_bpc(st, (int64_t)nkc * p->n * p->h, p->b, forward);
  cl_uint nb = (cl_uint)p->b, nh = (cl_uint)p->h, n = (cl_uint)p->n, d = (cl_uint)p->d, e = (cl_uint)p->e,
          extra = (cl_uint)p->extra_tokens;
  cl_uint8 shape, stride;
  cl_ulong str = 1;
  for (int i = 7; i >= 0; i--) {
    shape.s[i] = i < p->ndims ? (cl_uint)p->shape[i] : 1;
    stride.s[i] = (cl_uint)str;
    str *= shape.s[i];
  }
  ocl_args a = {k->kern, 0, CL_SUCCESS};
  OCL_ARG(a, bi); OCL_ARG(a, io); OCL_ARG(a, bt); OCL_ARG(a, to); OCL_ARG(a, bo); OCL_ARG(a, oo);
  OCL_ARG(a, bc); OCL_ARG(a, co); OCL_ARG(a, nb); OCL_ARG(a, bpc); OCL_ARG(a, nh); OCL_ARG(a, n); OCL_ARG(a, d);
  OCL_ARG(a, e); OCL_ARG(a, shape); OCL_ARG(a, stride); OCL_ARG(a, extra);
  if (a.err != CL_SUCCESS) return ocl_check(ctx, a.err, "lrpe: clSetKernelArg");
  /* about 128 work-items per group: the columns of a row, then rows */
  size_t wg = k->wg_max < 128 ? k->wg_max : 128;
  size_t l0 = nkc < wg ? nkc : wg, l1 = wg / l0;
  size_t l[3] = {l0, l1, 1};
  size_t g[3] = {ocl_round_up(nkc, l0), ocl_round_up((size_t)p->n, l1), (size_t)p->h * ((p->b + bpc - 1) / bpc)};
  return ocl_launch(ctx, k->kern, 3, g, l, name);
}

pattn_status ocl_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a) { return lrpe(ctx, a, 1); }
pattn_status ocl_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a) { return lrpe(ctx, a, 0); }

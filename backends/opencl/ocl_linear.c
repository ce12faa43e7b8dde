/* linear: y = x W^T + bias with CLBlast's SGEMM (row-major, W transposed). f16/bf16 operands
 * are converted to f32 scratch first (CLBlast's half GEMM needs cl_khr_fp16, which NVIDIA
 * lacks, and would round in half); the bias is added and y rounded by bias_store. */
#include <stdio.h>

#include <clblast_c.h>

#include "ocl.h"

/* rows x cols dense matrix at m as a view (for the copy kernel) */
static pattn_view mat_view(pattn_mat m, int64_t rows, int64_t cols) {
  pattn_view v = ocl_dense_view((cl_mem)m.buf, m.dtype, 1, 1, 1, rows, cols);
  v.offset = m.offset;
  return v;
}

/* An f32 copy of m (or m itself when it already is f32). */
static pattn_status as_f32(pattn_context *ctx, pattn_mat m, int64_t rows, int64_t cols, cl_mem *buf,
                           size_t *off, size_t *bytes) {
  *bytes = 0;
  if (m.dtype == PATTN_F32) {
    *buf = m.buf;
    *off = (size_t)m.offset;
    return PATTN_OK;
  }
  *bytes = (size_t)(rows * cols) * sizeof(float);
  pattn_status s = ocl_scratch(ctx, *bytes, buf, "linear");
  if (s != PATTN_OK) return s;
  *off = 0;
  pattn_view dst = ocl_dense_view(*buf, PATTN_F32, 1, 1, 1, rows, cols), src = mat_view(m, rows, cols);
  s = ocl_copy(ctx, &dst, &src, 1.0f);
  if (s != PATTN_OK) {
    ocl_scratch_free(ctx, *buf, *bytes);
    *buf = NULL;
    *bytes = 0;
  }
  return s;
}

pattn_status ocl_clblast_check(pattn_context *ctx, int c, const char *what) {
  if (c == CLBlastSuccess) return PATTN_OK;
  if (c == CLBlastOpenCLOutOfResources || c == CLBlastOpenCLOutOfHostMemory || c == CLBlastTempBufferAllocFailure)
    return ocl_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "opencl: %s: CLBlast out of memory (%d)", what, (int)c);
  return ocl_core->error(ctx, PATTN_ERR_BACKEND, "opencl: %s: CLBlast status %d", what, (int)c);
}

pattn_status ocl_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x, pattn_mat w,
                        pattn_mat bias, pattn_mat y) {
  ocl_state *st = ocl_state_of(ctx);
  if (m <= 0 || n <= 0) return PATTN_OK;
  cl_mem xb = NULL, wb = NULL, yb = NULL;
  size_t xo = 0, wo = 0, yo = 0, xbytes = 0, wbytes = 0, ybytes = 0;
  pattn_status s = as_f32(ctx, x, m, k, &xb, &xo, &xbytes);
  if (s == PATTN_OK) s = as_f32(ctx, w, n, k, &wb, &wo, &wbytes);
  if (s == PATTN_OK) {
    if (y.dtype == PATTN_F32) {
      yb = y.buf;
      yo = (size_t)y.offset;
    } else {
      ybytes = (size_t)(m * n) * sizeof(float);
      s = ocl_scratch(ctx, ybytes, &yb, "linear");
    }
  }
  if (s == PATTN_OK) {
    if (k == 0) {
      /* no reduction: y = bias (CLBlast refuses k = 0) */
      pattn_view yv = ocl_dense_view(yb, PATTN_F32, 1, 1, 1, m, n);
      yv.offset = (int64_t)yo;
      s = ocl_fill(ctx, &yv, 0.0f);
    } else {
      CLBlastStatusCode c = CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes,
                                         (size_t)m, (size_t)n, (size_t)k, 1.0f, xb, xo, (size_t)k, wb, wo,
                                         (size_t)k, 0.0f, yb, yo, (size_t)n, &st->queue, NULL);
      s = ocl_clblast_check(ctx, c, "linear: CLBlastSgemm");
    }
  }
  if (s == PATTN_OK && (bias.buf || y.dtype != PATTN_F32)) {
    char opts[160];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DDT_Y=%s -DDT_BIAS=%s -DHAS_BIAS=%d", ocl_dtype_define(y.dtype),
             ocl_dtype_define(bias.dtype), bias.buf != NULL);
    ocl_kernel *kk;
    s = ocl_get_kernel(ctx, st, "elementwise", opts, "bias_store", &kk);
    if (s == PATTN_OK) {
      cl_mem ydst = y.buf, bb = bias.buf;
      cl_long ydo = y.offset, so = (cl_long)yo, bo = bias.offset, nc = n, total = m * n;
      ocl_args a = {kk->kern, 0, CL_SUCCESS};
      OCL_ARG(a, ydst); OCL_ARG(a, ydo); OCL_ARG(a, yb); OCL_ARG(a, so); OCL_ARG(a, bb); OCL_ARG(a, bo);
      OCL_ARG(a, nc); OCL_ARG(a, total);
      s = ocl_check(ctx, a.err, "linear: clSetKernelArg");
      if (s == PATTN_OK) s = ocl_launch_1d(ctx, kk, (size_t)total, "linear bias");
    }
  }
  if (xbytes) ocl_scratch_free(ctx, xb, xbytes);
  if (wbytes) ocl_scratch_free(ctx, wb, wbytes);
  if (ybytes) ocl_scratch_free(ctx, yb, ybytes);
  return s;
}

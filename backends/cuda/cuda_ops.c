/* CUDA backend: elementwise ops, linear (cuBLAS), LayerNorm and md-LRPE launches. */
#include <string.h>

#include "cuda_internal.h"
#include "dtype.h"

#define ENTER(ctx, st)                            \
  cuda_state *st = NULL;                               \
  do {                                            \
    pattn_status e_ = cuda_enter((ctx), &st);     \
    if (e_ != PATTN_OK) return e_;                \
  } while (0)

pattn_status cuda_fill(pattn_context *ctx, const pattn_view *dst, float value) {
  ENTER(ctx, st);
  CU_TRY(ctx, pcu_fill(st->stream, cuda_view(dst), value), "fill");
  return PATTN_OK;
}

pattn_status cuda_copy(pattn_context *ctx, const pattn_view *dst, const pattn_view *src, float alpha) {
  ENTER(ctx, st);
  CU_TRY(ctx, pcu_copy(st->stream, cuda_view(dst), cuda_view(src), alpha), "copy");
  return PATTN_OK;
}

pattn_status cuda_merge(pattn_context *ctx, const pattn_view *acc_out, const pattn_view *acc_lse,
                        const pattn_view *part_out, const pattn_view *part_lse) {
  ENTER(ctx, st);
  CU_TRY(ctx, pcu_merge(st->stream, cuda_view(acc_out), cuda_view(acc_lse), cuda_view(part_out), cuda_view(part_lse)),
         "merge");
  return PATTN_OK;
}

pattn_status cuda_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps, pattn_mat x, pattn_mat gamma,
                            pattn_mat beta, pattn_mat y) {
  ENTER(ctx, st);
  CU_TRY(ctx, pcu_layernorm(st->stream, rows, cols, eps, cuda_mat(x), cuda_mat(gamma), cuda_mat(beta), cuda_mat(y)),
         "layernorm");
  return PATTN_OK;
}

static cudaDataType blas_type(pattn_dtype dt) {
  return dt == PATTN_F16 ? CUDA_R_16F : dt == PATTN_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static const void *mat_ptr(pattn_mat m) { return (const char *)m.buf + (size_t)m.offset * pattn_dtype_bytes(m.dtype); }

/* Row-major y[m][n] = x[m][k] w[n][k]^T is column-major y^T = w^T' x^T': one GEMM with A = w
 * transposed. f16/bf16 operands go through cublasGemmEx with f32 compute; the product lands
 * in an f32 workspace (or straight in y when y is f32) and one kernel adds the bias and
 * rounds once to y's dtype. Operands of different dtypes are first widened to f32. */
pattn_status cuda_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x, pattn_mat w, pattn_mat bias,
                         pattn_mat y) {
  ENTER(ctx, st);
  if (m <= 0 || n <= 0) return PATTN_OK;
  if (m > 0x7fffffff || n > 0x7fffffff || k > 0x7fffffff)
    return cuda_core->error(ctx, PATTN_ERR_UNSUPPORTED, "cuda linear: dimensions beyond 2^31 are not supported");
  void *ws = NULL, *xw = NULL;
  size_t ws_bytes = 0, xw_bytes = 0;
  pattn_status s = PATTN_OK;
  const int direct = y.dtype == PATTN_F32;
  float *acc;
  if (direct) {
    acc = (float *)mat_ptr(y);
  } else {
    ws_bytes = (size_t)m * (size_t)n * sizeof(float);
    if ((s = cuda_ws_alloc(ctx, ws_bytes, &ws, "linear")) != PATTN_OK) return s;
    acc = ws;
  }
  const void *A = mat_ptr(w), *B = mat_ptr(x);
  pattn_dtype dt = w.dtype;
  if (x.dtype != w.dtype) {
    /* widen both to f32 in one workspace: [n][k] then [m][k] */
    xw_bytes = (size_t)(n + m) * (size_t)k * sizeof(float);
    if ((s = cuda_ws_alloc(ctx, xw_bytes, &xw, "linear")) != PATTN_OK) goto done;
    float *wf = xw, *xf = wf + (size_t)n * (size_t)k;
    pcu_view vw = {w.buf, (int)w.dtype, w.offset, 1, 1, 1, n, k, 0, 0, 0, k};
    pcu_view vx = {x.buf, (int)x.dtype, x.offset, 1, 1, 1, m, k, 0, 0, 0, k};
    pcu_view dw = {wf, PCU_F32, 0, 1, 1, 1, n, k, 0, 0, 0, k};
    pcu_view dx = {xf, PCU_F32, 0, 1, 1, 1, m, k, 0, 0, 0, k};
    cudaError_t e = pcu_copy(st->stream, dw, vw, 1.0f);
    if (e == cudaSuccess) e = pcu_copy(st->stream, dx, vx, 1.0f);
    if (e != cudaSuccess) { s = cuda_fail(ctx, e, "linear: widening operands"); goto done; }
    A = wf; B = xf; dt = PATTN_F32;
  }
  if (k == 0) {
    /* an empty sum: y = bias */
    cudaError_t e = cudaMemsetAsync(acc, 0, (size_t)m * (size_t)n * sizeof(float), st->stream);
    if (e != cudaSuccess) { s = cuda_fail(ctx, e, "linear"); goto done; }
  } else {
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t b = cublasSetMathMode(st->blas, CUBLAS_DEFAULT_MATH); /* no TF32: exact f32 */
    if (b == CUBLAS_STATUS_SUCCESS) {
      if (dt == PATTN_F32)
        b = cublasSgemm(st->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, A, (int)k, B, (int)k, &zero,
                        acc, (int)n);
      else
        b = cublasGemmEx(st->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k, &one, A, blas_type(dt), (int)k, B,
                         blas_type(dt), (int)k, &zero, acc, CUDA_R_32F, (int)n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    if (b != CUBLAS_STATUS_SUCCESS) { s = cublas_fail(ctx, b, "linear GEMM"); goto done; }
  }
  if (!direct || bias.buf) {
    pcu_mat src_is_y = cuda_mat(y);
    cudaError_t e = pcu_bias_store(st->stream, m, n, acc, cuda_mat(bias), src_is_y);
    if (e != cudaSuccess) { s = cuda_fail(ctx, e, "linear bias"); goto done; }
  }
done:
  cuda_ws_free(ctx, xw, xw_bytes);
  cuda_ws_free(ctx, ws, ws_bytes);
  return s;
}

static pattn_status lrpe(pattn_context *ctx, const pattn_lrpe_args *a, int fwd) {
  ENTER(ctx, st);
  if (a->ndims < 1 || a->ndims > 8)
    return cuda_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT, "cuda lrpe: ndims %d", a->ndims);
  int64_t cells = 1;
  for (int i = 0; i < a->ndims; i++) cells *= a->shape[i];
  if (a->n > 0x7fffffff || cells > 0x7fffffff)
    return cuda_core->error(ctx, PATTN_ERR_UNSUPPORTED, "cuda lrpe: sequence length beyond 2^31");
  if (a->cache.buf && a->cache.dtype != PATTN_F32)
    return cuda_core->error(ctx, PATTN_ERR_UNSUPPORTED, "cuda lrpe: the angle cache must be f32");
  pcu_lrpe_args k;
  memset(&k, 0, sizeof k);
  k.in = cuda_mat(a->in);
  k.theta = cuda_mat(a->theta);
  k.out = cuda_mat(a->out);
  k.cache = cuda_mat(a->cache);
  k.b = a->b; k.h = a->h; k.n = a->n; k.d = a->d; k.e = a->e;
  k.ndims = a->ndims;
  for (int i = 0; i < a->ndims; i++) k.shape[i] = a->shape[i];
  k.extra_tokens = a->extra_tokens;
  CU_TRY(ctx, fwd ? pcu_lrpe_forward(st->stream, &k) : pcu_lrpe_backward(st->stream, &k), fwd ? "lrpe forward" : "lrpe backward");
  return PATTN_OK;
}

pattn_status cuda_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a) { return lrpe(ctx, a, 1); }
pattn_status cuda_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a) { return lrpe(ctx, a, 0); }

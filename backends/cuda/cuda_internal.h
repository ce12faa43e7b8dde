/* CUDA backend internals: per-context state and the error plumbing shared by the host
 * files. Every CUDA and cuBLAS call is checked; a failure is recorded on the context through
 * the core (core->error) with the runtime's own message. */
#ifndef PATTN_CUDA_INTERNAL_H
#define PATTN_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "backend.h"
#include "cuda_kernels.h"

#define CUDA_HIDDEN __attribute__((visibility("hidden")))

typedef struct cuda_state {
  int            device;
  int            cc;          /* compute capability, major*10 + minor */
  int            num_sms;     /* multiprocessors */
  size_t         smem_optin;  /* per-block shared memory a kernel may opt in to */
  int            async_alloc; /* stream-ordered allocator available */
  cudaMemPool_t  pool;        /* the context's own pool (NULL: the device's default pool) */
  cudaStream_t   stream;      /* the context's one in-order queue */
  cublasHandle_t blas;
} cuda_state;

/* Set by pattn_backend_entry. */
extern CUDA_HIDDEN const pattn_core_api *cuda_core;

static inline cuda_state *cuda_state_of(const pattn_context *ctx) { return (cuda_state *)cuda_core->state(ctx); }

/* Record a CUDA runtime failure: OUT_OF_MEMORY for allocation failures, BACKEND otherwise. */
CUDA_HIDDEN pattn_status cuda_fail(pattn_context *ctx, cudaError_t err, const char *what);
CUDA_HIDDEN pattn_status cublas_fail(pattn_context *ctx, cublasStatus_t err, const char *what);
/* Make the context's device current (several contexts may use several devices). */
CUDA_HIDDEN pattn_status cuda_enter(pattn_context *ctx, cuda_state **st);

#define CU_TRY(ctx, expr, what)                                     \
  do {                                                              \
    cudaError_t cu_err_ = (cudaError_t)(expr);                      \
    if (cu_err_ != cudaSuccess) return cuda_fail((ctx), cu_err_, (what)); \
  } while (0)

#define CUBLAS_TRY(ctx, expr, what)                                   \
  do {                                                                \
    cublasStatus_t cb_err_ = (expr);                                  \
    if (cb_err_ != CUBLAS_STATUS_SUCCESS) return cublas_fail((ctx), cb_err_, (what)); \
  } while (0)

static inline pcu_view cuda_view(const pattn_view *v) {
  pcu_view r = {v->buf, (int)v->dtype, v->offset, v->nb, v->ns, v->nh, v->n, v->d, v->sb, v->ss, v->sh, v->sn};
  return r;
}
static inline pcu_view cuda_view_opt(const pattn_view *v) {
  if (v) return cuda_view(v);
  pcu_view r = {0};
  return r;
}
static inline pcu_mat cuda_mat(pattn_mat m) {
  pcu_mat r = {m.buf, (int)m.dtype, m.offset};
  return r;
}

/* Workspace through the core (counted in the context's memory statistics). Frees are
 * stream-ordered, so a workspace may be released right after the launches that use it. */
CUDA_HIDDEN pattn_status cuda_ws_alloc(pattn_context *ctx, size_t bytes, void **p, const char *what);
CUDA_HIDDEN void         cuda_ws_free(pattn_context *ctx, void *p, size_t bytes);

/* Ops (cuda_ops.c, cuda_attention.c). */
CUDA_HIDDEN pattn_status cuda_fill(pattn_context *ctx, const pattn_view *dst, float value);
CUDA_HIDDEN pattn_status cuda_copy(pattn_context *ctx, const pattn_view *dst, const pattn_view *src, float alpha);
CUDA_HIDDEN pattn_status cuda_merge(pattn_context *ctx, const pattn_view *acc_out, const pattn_view *acc_lse,
                                    const pattn_view *part_out, const pattn_view *part_lse);
CUDA_HIDDEN pattn_status cuda_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x, pattn_mat w,
                                     pattn_mat bias, pattn_mat y);
CUDA_HIDDEN pattn_status cuda_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps, pattn_mat x,
                                        pattn_mat gamma, pattn_mat beta, pattn_mat y);
CUDA_HIDDEN pattn_status cuda_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a);
CUDA_HIDDEN pattn_status cuda_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a);
CUDA_HIDDEN pattn_status cuda_attention(pattn_context *ctx, const pattn_attn_args *a);
CUDA_HIDDEN pattn_status cuda_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a);
CUDA_HIDDEN pattn_status cuda_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a);

#endif /* PATTN_CUDA_INTERNAL_H */

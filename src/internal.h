/* Core internals: the context, tensors, error reporting, and the view-level entry points
 * that the public operators and the multi-head wrapper share. */
#ifndef PATTN_INTERNAL_H
#define PATTN_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

#include "backend.h"

#define PATTN_ERROR_LEN 1024

struct pattn_context {
  const pattn_backend *be;
  void   *be_state;
  char    backend_name[16];
  char    device_name[256];
  char    last_error[PATTN_ERROR_LEN];
  size_t  mem_in_use, mem_peak;
  size_t  guard_bytes; /* testing hook: guard bands around tensors created afterwards */
};

struct pattn_tensor {
  pattn_context *ctx;
  pattn_dtype    dtype;
  int            ndim;
  int64_t        shape[PATTN_MAX_DIMS];
  int64_t        numel;
  size_t         bytes;       /* numel * dtype size */
  void          *buf;         /* backend buffer */
  size_t         byte_offset; /* where the elements start inside buf (guard band) */
  size_t         alloc_bytes; /* what buf holds in all */
};

/* ---- errors and logging (status.c, log.c) ---- */
pattn_status pattn__error(pattn_context *ctx, pattn_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
pattn_status pattn__verror(pattn_context *ctx, pattn_status st, const char *fmt, va_list ap);
/* For failures without a context (context creation): thread-local message. */
pattn_status pattn__global_error(pattn_status st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pattn__clear_error(pattn_context *ctx);
void pattn__log(pattn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  pattn__log_enabled(pattn_log_level level);

/* ---- backends (registry.c) ---- */
extern const pattn_core_api pattn__core_api;
/* Find (and load, for modules) a backend by name; NO_BACKEND with the reason in why. */
pattn_status pattn__backend_get(const char *name, const pattn_backend **be, char *why, size_t why_len);
/* Names every backend the library knows, in auto order after cpu: "cpu", "opencl", "cuda". */
extern const char *const pattn__backend_names[];
extern const int pattn__backend_count;

/* ---- accounted device memory (context.c) ---- */
pattn_status pattn__alloc(pattn_context *ctx, size_t bytes, void **buf);
void         pattn__free(pattn_context *ctx, void *buf, size_t bytes);

/* ---- views of tensors (tensor.c) ---- */
/* A 4-D tensor [b][x][y][d] seen as (batch, head, row) in layout: BHND: x = head, y = row;
 * BNHD: x = row, y = head. */
pattn_view pattn__view4(const pattn_tensor *t, pattn_layout layout);
/* Dims of a 4-D tensor in (b, h, n, d) order for the layout. */
void pattn__dims4(const pattn_tensor *t, pattn_layout layout, int64_t *b, int64_t *h, int64_t *n, int64_t *d);
pattn_mat pattn__mat(const pattn_tensor *t);
/* Allocate an internal f32 temp tensor (counted); destroy with pattn_tensor_destroy. */
pattn_status pattn__temp(pattn_context *ctx, pattn_dtype dt, int ndim, const int64_t *shape, pattn_tensor **t);

/* ---- validation helpers (validate.c): each records a message naming the argument ---- */
pattn_status pattn__check_ctx(pattn_context *ctx);
pattn_status pattn__check_desc(pattn_context *ctx, const char *op, const void *desc, size_t struct_size, size_t min_size);
pattn_status pattn__check_tensor(pattn_context *ctx, const char *op, const char *name, const pattn_tensor *t, int ndim);
pattn_status pattn__check_same_dtype(pattn_context *ctx, const char *op, const char *name, const pattn_tensor *t, pattn_dtype dt);
pattn_status pattn__check_layout(pattn_context *ctx, const char *op, pattn_layout layout);
pattn_status pattn__check_scale(pattn_context *ctx, const char *op, float scale);
/* name[dim] must equal want */
/* desc non-NULL and large enough, layout and scale valid: what every operator descriptor
 * (they all start with struct_size, layout, scale) needs. Use PATTN_CHECK_OP_DESC. */
pattn_status pattn__check_op_desc(pattn_context *ctx, const char *op, const void *desc, size_t struct_size, size_t min_size,
                                  pattn_layout layout, float scale);
#define PATTN_CHECK_OP_DESC(ctx, op, desc)                                                                          \
  pattn__check_op_desc(ctx, op, desc, (desc) ? (desc)->struct_size : 0, sizeof *(desc), (desc) ? (desc)->layout : 0, \
                       (desc) ? (desc)->scale : 0.0f)
pattn_status pattn__check_dim(pattn_context *ctx, const char *op, const char *name, const char *what, int64_t got, int64_t want);
pattn_status pattn__check_distinct(pattn_context *ctx, const char *op, const pattn_tensor *const *outs, const char *const *out_names, int nout,
                                   const pattn_tensor *const *all, const char *const *all_names, int nall);
static inline float pattn__resolve_scale(float scale, int64_t dk) {
  return scale > 0 ? scale : (float)(1.0 / __builtin_sqrt((double)dk));
}

/* ---- view-level operators shared by the public entry points and pattn_mha ---- */
/* Dilated attention on (b, h, n, d) views already validated (ops_dilated.c). */
typedef struct pattn__dilated_params {
  float scale; int causal; int G; const int64_t *seg; const int64_t *rate; pattn_dilated_merge merge;
  int gather; /* copy dilated positions to contiguous buffers around each attention */
} pattn__dilated_params;
/* The size a caller's pattn_dilated_desc must have (before the gather extension), and whether
 * it asks for gather. */
#define PATTN_DILATED_DESC_MIN_SIZE offsetof(pattn_dilated_desc, gather)
static inline int pattn__dilated_gather(const pattn_dilated_desc *d) {
  return d->struct_size >= offsetof(pattn_dilated_desc, gather) + sizeof(int) && d->gather;
}
pattn_status pattn__validate_dilated(pattn_context *ctx, const char *op, const pattn_dilated_desc *desc, int64_t n, int64_t h);
pattn_status pattn__run_dilated(pattn_context *ctx, const pattn__dilated_params *p, const pattn_view *q,
                                const pattn_view *k, const pattn_view *v, const pattn_view *out);
/* Ring attention on one context over views (ops_ring.c). lse may be NULL. */
pattn_status pattn__validate_ring(pattn_context *ctx, const char *op, const pattn_ring_desc *desc, int64_t nk);
pattn_status pattn__run_ring(pattn_context *ctx, float scale, int causal, int ring_size, const pattn_view *q,
                             const pattn_view *k, const pattn_view *v, const pattn_view *out, const pattn_view *lse);
/* Block-sparse (ops_block_sparse.c). */
pattn_status pattn__validate_block_sparse(pattn_context *ctx, const char *op, const pattn_block_sparse_desc *desc,
                                          int64_t h, int64_t nq, int64_t nk);
pattn_status pattn__run_block_sparse(pattn_context *ctx, const pattn_block_sparse_desc *desc, float scale,
                                     const pattn_view *q, const pattn_view *k, const pattn_view *v, const pattn_view *out);
/* Dense (ops_attention.c). */
/* q [b,hq,nq,dk], k [b,hkv,nk,dk], v [b,hkv,nk,dv], out [b,hq,nq,dv] in layout, one dtype. */
pattn_status pattn__check_qkvo(pattn_context *ctx, const char *op, pattn_layout layout, const pattn_tensor *q, const pattn_tensor *k,
                               const pattn_tensor *v, const pattn_tensor *out, const char *out_name);
/* lse: f32 [b, hq, nq] whatever the layout; its view as (b, 1, hq, nq, 1). */
pattn_status pattn__check_lse(pattn_context *ctx, const char *op, const pattn_tensor *lse, int64_t b, int64_t hq, int64_t nq);
pattn_view   pattn__lse_view(const pattn_tensor *lse);
/* q, k, v, out of one shape and dtype, out distinct (dilated, block-sparse). */
pattn_status pattn__check_self_attention(pattn_context *ctx, const char *op, pattn_layout layout, const pattn_tensor *q,
                                         const pattn_tensor *k, const pattn_tensor *v, const pattn_tensor *out);
pattn_status pattn__validate_attention_desc(pattn_context *ctx, const char *op, const pattn_attention_desc *desc);
pattn_status pattn__run_attention(pattn_context *ctx, const pattn_attention_desc *desc, float scale,
                                  const pattn_view *q, const pattn_view *k, const pattn_view *v,
                                  const pattn_view *mask, const pattn_view *out, const pattn_view *lse);

#endif /* PATTN_INTERNAL_H */

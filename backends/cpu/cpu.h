/* CPU backend internals. Two modes share this backend:
 *  - reference (cpu_ref_*.c): straightforward loops, f64 accumulation; the conformance oracle;
 *  - fast (cpu_fast_*.c, default): cache-blocked, vectorisable, threaded over
 *    batch x heads x query blocks, flash-style tiling (never n^2 scores for FLASH/AUTO).
 * Buffers are plain host memory: a view's buf is a pointer to the buffer's first byte. */
#ifndef PATTN_CPU_H
#define PATTN_CPU_H

#include "backend.h"
#include "dtype.h"

typedef struct cpu_pool cpu_pool;

typedef struct cpu_state {
  int       reference;   /* 1: reference mode */
  int       num_threads; /* >= 1 */
  cpu_pool *pool;        /* NULL when num_threads == 1 */
} cpu_state;

/* Set by pattn_cpu_backend(); errors and workspace go through it. */
extern const pattn_core_api *cpu_core;

static inline cpu_state *cpu_state_of(const pattn_context *ctx) {
  return (cpu_state *)cpu_core->state(ctx);
}

/* Workspace, counted in the context's memory statistics. Free with the same size. */
static inline pattn_status cpu_workspace(pattn_context *ctx, size_t bytes, void **p) {
  return cpu_core->alloc(ctx, bytes, p);
}
static inline void cpu_workspace_free(pattn_context *ctx, void *p, size_t bytes) {
  cpu_core->free(ctx, p, bytes);
}

/* Thread pool (threadpool.c). fn(arg, task, thread) runs for task in [0, ntasks) spread over
 * the pool's threads, thread in [0, num_threads); returns when all tasks are done. Runs
 * inline when the pool is NULL. Not re-entrant: a task must not call cpu_parallel_for. */
typedef void (*cpu_task_fn)(void *arg, int64_t task, int thread);
cpu_pool *cpu_pool_create(int num_threads);
void      cpu_pool_destroy(cpu_pool *pool);
void      cpu_parallel_for(const cpu_state *st, int64_t ntasks, cpu_task_fn fn, void *arg);

/* Element address helpers for views. */
static inline float cpu_vload(const pattn_view *v, int64_t ib, int64_t is, int64_t ih, int64_t i, int64_t j) {
  return pattn_load(v->buf, v->dtype, pattn_view_index(v, ib, is, ih, i, j));
}
static inline void cpu_vstore(const pattn_view *v, int64_t ib, int64_t is, int64_t ih, int64_t i, int64_t j, float x) {
  pattn_store(v->buf, v->dtype, pattn_view_index(v, ib, is, ih, i, j), x);
}

/* Elementwise, shared by both modes (cpu_elementwise.c). */
pattn_status cpu_fill(pattn_context *ctx, const pattn_view *dst, float value);
pattn_status cpu_copy(pattn_context *ctx, const pattn_view *dst, const pattn_view *src, float alpha);
pattn_status cpu_merge(pattn_context *ctx, const pattn_view *acc_out, const pattn_view *acc_lse,
                       const pattn_view *part_out, const pattn_view *part_lse);

/* Reference mode (cpu_ref_*.c): f64 accumulation, single thread, the oracle. */
pattn_status cpu_ref_attention(pattn_context *ctx, const pattn_attn_args *a);
pattn_status cpu_ref_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a);
pattn_status cpu_ref_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a);
pattn_status cpu_ref_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x,
                            pattn_mat w, pattn_mat bias, pattn_mat y);
pattn_status cpu_ref_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps,
                               pattn_mat x, pattn_mat gamma, pattn_mat beta, pattn_mat y);
pattn_status cpu_ref_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a);
pattn_status cpu_ref_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a);

/* Fast mode (cpu_fast_*.c): threaded, blocked, f32 accumulation. */
pattn_status cpu_fast_attention(pattn_context *ctx, const pattn_attn_args *a);
pattn_status cpu_fast_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a);
pattn_status cpu_fast_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a);
pattn_status cpu_fast_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x,
                             pattn_mat w, pattn_mat bias, pattn_mat y);
pattn_status cpu_fast_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps,
                                pattn_mat x, pattn_mat gamma, pattn_mat beta, pattn_mat y);
pattn_status cpu_fast_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a);
pattn_status cpu_fast_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a);

/* The register-blocked f32 GEMM microkernel behind fast attention and linear
 * (cpu_fast_attention.c): C[M][N] (+)= A[M][K] B[K][N] with A(i, k) = A[i*ar + k*ak],
 * M % 4 == 0, N % 16 == 0. */
void cpu_fast_gemm(int64_t M, int64_t N, int64_t K, const float *restrict A, int64_t ar, int64_t ak,
                   const float *restrict B, int64_t ldb, float *restrict C, int64_t ldc, int accumulate);

/* LRPE angle of row t, column k (SPEC.md section 6), shared by both modes so the exact f32
 * multiply is written once: ang = (float)p[k / e] * theta[h][k % e]; 0 for extra tokens. */
static inline void cpu_lrpe_positions(const pattn_lrpe_args *a, int64_t t, int64_t *p) {
  int64_t c = t - a->extra_tokens;
  for (int i = a->ndims - 1; i >= 0; i--) {
    p[i] = c % a->shape[i];
    c /= a->shape[i];
  }
}

#endif /* PATTN_CPU_H */

/* The interface between the pattn core and a backend (cpu, opencl, cuda).
 *
 * The core validates every public call against SPEC.md before a backend sees it, so a
 * backend op may assume: shapes agree, dtypes are valid, views lie inside their buffers,
 * scale is resolved (> 0). A backend answers only what it computes; composition of
 * dilated, ring and multi-head attention out of these ops lives in the core (src/ops_*.c).
 *
 * GPU backends are shared modules. Each exports one symbol,
 *     const pattn_backend *pattn_backend_entry(const pattn_core_api *core);
 * returning its table with abi == PATTN_BACKEND_ABI. Everything a module needs from the
 * core (errors, logging, accounted allocation) comes through pattn_core_api, so modules
 * never link against libpattn.
 */
#ifndef PATTN_BACKEND_H
#define PATTN_BACKEND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "pattn/pattn.h"

#define PATTN_BACKEND_ABI 4u

/* A strided view of a (batch, segment, head, row, column) region inside one backend buffer.
 * Element (ib, is, ih, i, j) lives at buf[offset + ib*sb + is*ss + ih*sh + i*sn + j]
 * (element units; columns are contiguous). The segment axis lets one launch cover every
 * segment of a dilated pattern or chunk of a ring: plain attention has ns = 1. Dilation is
 * just a row stride sn = rate * (row stride of the tensor): kernels read dilated positions
 * in place. */
typedef struct pattn_view {
  void       *buf;   /* backend buffer: host pointer (cpu), cl_mem (opencl), device pointer (cuda) */
  pattn_dtype dtype;
  int64_t     offset;
  int64_t     nb, ns, nh, n, d;
  int64_t     sb, ss, sh, sn;
} pattn_view;

static inline int64_t pattn_view_index(const pattn_view *v, int64_t ib, int64_t is, int64_t ih,
                                       int64_t i, int64_t j) {
  return v->offset + ib * v->sb + is * v->ss + ih * v->sh + i * v->sn + j;
}

/* A dense row-major matrix or vector inside a buffer (offset in elements). */
typedef struct pattn_mat {
  void       *buf;   /* NULL: absent */
  pattn_dtype dtype;
  int64_t     offset;
} pattn_mat;

/* Dense attention over views (SPEC.md section 1), the building block of every core.
 *  q   [nb][ns][hq][nq][dk]      k [nb][ns][hkv][nk][dk]     v [nb][ns][hkv][nk][dv]
 *  out [nb][ns][hq][nq][dv]      hq % hkv == 0: query head ih reads kv head ih / (hq/hkv)
 *  mask (may be NULL): f32, nh = hq or 1 (sh = 0), nb = nb or 1 (sb = 0), ns = 1 (ss = 0),
 *       n = nq rows, d = nk columns; added to the scaled score.
 *  lse (may be NULL): f32, n = nq rows, d = 1: natural-log logsumexp of the row's scaled,
 *       masked scores.
 *  causal: key j is visible to query i iff j <= i + causal_offset.
 *  A row with no visible key (or all scores -inf) gives out = 0, lse = -inf.
 *  out receives out_scale * result (1 except for dilated head-group merging). */
typedef struct pattn_attn_args {
  pattn_view        q, k, v, out;
  const pattn_view *mask;
  const pattn_view *lse;
  float             scale;
  int               causal;
  int64_t           causal_offset;
  float             out_scale;
  pattn_algo        algo;      /* NAIVE: scores materialised; FLASH/AUTO: tiled, O(n d) memory */
  pattn_precision   precision;
} pattn_attn_args;

/* Backward of dense attention (SPEC.md section 1). lse is required (f32, d = 1).
 * dq like q, dk like k, dv like v (GQA: dk/dv summed over the query heads sharing a kv
 * head). All of dq, dk, dv are overwritten. No mask. */
typedef struct pattn_attn_bwd_args {
  pattn_view      q, k, v, out, dout, lse, dq, dk, dv;
  float           scale;
  int             causal;
  int64_t         causal_offset;
  pattn_precision precision;
} pattn_attn_bwd_args;

/* Block-sparse attention (SPEC.md section 4): query block I sees key block J iff
 * layout[(lh ? ih : 0)][I][J] != 0, with lh = layout_heads > 1; joint softmax over the row;
 * optional token-level causal with causal_offset as above. ns == 1. layout is host memory,
 * [layout_heads][nqb][nkb], valid only during the call (copy it if enqueueing). */
typedef struct pattn_block_sparse_args {
  pattn_view     q, k, v, out;
  float          scale;
  int            causal;
  int64_t        causal_offset;
  int            block_size;
  int            layout_heads;
  int64_t        nqb, nkb;
  const uint8_t *layout;
} pattn_block_sparse_args;

/* md_lrpe_cosine (SPEC.md section 6). Forward: in = x [b][h][n][d], out = [b][h][n][2d],
 * cache (buf may be NULL) = f32 [h][n][d] angles written. Backward: in = dout [b][h][n][2d],
 * out = dx [b][h][n][d]; cache (buf may be NULL) read instead of recomputing angles.
 * theta [h][e] in any dtype. */
typedef struct pattn_lrpe_args {
  pattn_mat in, theta, out, cache;
  int64_t   b, h, n, d, e;
  int       ndims;
  int64_t   shape[PATTN_MAX_DIMS];
  int64_t   extra_tokens;
} pattn_lrpe_args;

/* What the core offers a backend. */
typedef enum pattn_log_level { PATTN_LOG_ERROR = 0, PATTN_LOG_WARN, PATTN_LOG_INFO, PATTN_LOG_DEBUG } pattn_log_level;
typedef struct pattn_core_api {
  unsigned abi;
  /* Record a failure on ctx (pattn_last_error) and return status. */
  pattn_status (*error)(pattn_context *ctx, pattn_status status, const char *fmt, ...)
      __attribute__((format(printf, 3, 4)));
  /* Logging to stderr, filtered by $PATTN_LOG. */
  void (*log)(pattn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
  int (*log_enabled)(pattn_log_level level);
  /* Workspace: allocated through the backend's buf_alloc and counted in the context's
   * memory statistics. */
  pattn_status (*alloc)(pattn_context *ctx, size_t bytes, void **buf);
  void (*free)(pattn_context *ctx, void *buf, size_t bytes);
  /* The backend's own state for ctx (what init stored). */
  void *(*state)(const pattn_context *ctx);
  const char *(*library_version)(void);
} pattn_core_api;

typedef struct pattn_backend {
  unsigned    abi;   /* PATTN_BACKEND_ABI */
  const char *name;  /* "cpu", "opencl", "cuda" */

  /* Can this backend run here? PATTN_OK, or a status and a reason in why. Lists the
   * devices (one name per line) into devices when it is not NULL. */
  pattn_status (*probe)(char *why, size_t why_len, char *devices, size_t devices_len);
  /* Open a device for ctx. device: index or name substring, NULL for the default; the
   * string "@gpu" (what PATTN_BACKEND=auto passes) means "the first GPU device, or
   * PATTN_ERR_NO_DEVICE when there is none".
   * Stores the backend state in *state and a human-readable device name in name. */
  pattn_status (*init)(pattn_context *ctx, const pattn_options *opt, const char *device,
                       void **state, char *name, size_t name_len);
  void (*destroy)(void *state);

  /* Raw buffers; the core does the accounting. Offsets and sizes in bytes. */
  pattn_status (*buf_alloc)(pattn_context *ctx, size_t bytes, void **buf);
  void         (*buf_free)(pattn_context *ctx, void *buf);
  pattn_status (*buf_write)(pattn_context *ctx, void *buf, size_t offset, const void *src, size_t bytes);
  pattn_status (*buf_read)(pattn_context *ctx, const void *buf, size_t offset, void *dst, size_t bytes);
  pattn_status (*synchronize)(pattn_context *ctx);

  /* Elementwise helpers the core composes with. All views have equal extents. */
  pattn_status (*fill)(pattn_context *ctx, const pattn_view *dst, float value);
  /* dst = alpha * src, converting dtype (round-to-nearest-even). */
  pattn_status (*copy)(pattn_context *ctx, const pattn_view *dst, const pattn_view *src, float alpha);
  /* Online-softmax merge of a partial result into an accumulator, all f32:
   *   lse = logaddexp(acc_lse, part_lse)
   *   acc_out = acc_out * exp(acc_lse - lse) + part_out * exp(part_lse - lse)
   * where a -inf lse contributes nothing; both -inf leaves acc_out = 0, acc_lse = -inf.
   * lse views have d = 1 and the same (nb, ns, nh, n) as the out views. */
  pattn_status (*merge)(pattn_context *ctx, const pattn_view *acc_out, const pattn_view *acc_lse,
                        const pattn_view *part_out, const pattn_view *part_lse);

  /* y[m][n] = sum_k x[m][k] * w[n][k] + bias[n]   (PyTorch nn.Linear; bias.buf may be NULL) */
  pattn_status (*linear)(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x,
                         pattn_mat w, pattn_mat bias, pattn_mat y);
  /* y[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta over rows of `cols`; y may be x. */
  pattn_status (*layernorm)(pattn_context *ctx, int64_t rows, int64_t cols, float eps,
                            pattn_mat x, pattn_mat gamma, pattn_mat beta, pattn_mat y);

  pattn_status (*attention)(pattn_context *ctx, const pattn_attn_args *a);
  pattn_status (*attention_backward)(pattn_context *ctx, const pattn_attn_bwd_args *a);
  pattn_status (*block_sparse)(pattn_context *ctx, const pattn_block_sparse_args *a);
  pattn_status (*lrpe_forward)(pattn_context *ctx, const pattn_lrpe_args *a);
  pattn_status (*lrpe_backward)(pattn_context *ctx, const pattn_lrpe_args *a);

  /* Optional (NULL: not offered). A communicator over the backend's native library (NCCL
   * for cuda), made from the caller's handle (an ncclComm_t): what pattn_comm_create_nccl
   * forwards to, so libpattn itself links no GPU library. See src/comm.h. */
  pattn_status (*comm_create_native)(pattn_context *ctx, void *native_comm, pattn_comm **out);

  /* Optional (NULL: not offered). The device's own count of its memory (cudaMemGetInfo), so
   * the bench can cross-check pattn's accounting against the driver's. */
  pattn_status (*device_memory)(pattn_context *ctx, size_t *free_bytes, size_t *total_bytes);

  /* Optional (NULL: the core times with a synchronised host clock). Device-side timing: a
   * marker recorded on the context's queue, the milliseconds between two of them (waiting
   * for the later one), and its release. */
  pattn_status (*event_record)(pattn_context *ctx, void **ev);
  pattn_status (*event_elapsed)(pattn_context *ctx, void *start, void *end, double *ms);
  void         (*event_destroy)(pattn_context *ctx, void *ev);
} pattn_backend;

typedef const pattn_backend *(*pattn_backend_entry_fn)(const pattn_core_api *core);

/* Built-in CPU backend. */
const pattn_backend *pattn_cpu_backend(const pattn_core_api *core);

#endif /* PATTN_BACKEND_H */

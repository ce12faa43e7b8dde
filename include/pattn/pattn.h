/* pattn: attention variants of long-context transformers on any GPU.
 *
 * The names and signatures below are a contract (shared/API.md). Additions made beside the
 * contract are marked "pattn extension". The exact math of every operator is in SPEC.md;
 * every backend computes the same function, proven by the conformance suite.
 *
 * Conventions: every call returns a pattn_status; on PATTN_ERR_INVALID_ARGUMENT nothing was
 * enqueued and no output was touched; pattn_last_error(ctx) says which argument and why.
 * No call prints, aborts or exits. Ops are enqueued in order on the context's queue;
 * pattn_tensor_read and pattn_synchronize wait.
 */
#ifndef PATTN_PATTN_H
#define PATTN_PATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define PATTN_API __declspec(dllexport)
#elif defined(__GNUC__)
#define PATTN_API __attribute__((visibility("default")))
#else
#define PATTN_API
#endif

/* ---- status and versions ---- */
typedef enum pattn_status {
  PATTN_OK = 0,
  PATTN_ERR_INVALID_ARGUMENT = -1, /* bad shape, dtype, option: nothing was written     */
  PATTN_ERR_UNSUPPORTED      = -2, /* valid, but this backend/device cannot do it        */
  PATTN_ERR_NO_BACKEND       = -3, /* the backend asked for is not built or not loadable */
  PATTN_ERR_NO_DEVICE        = -4, /* backend present, no matching device                */
  PATTN_ERR_OUT_OF_MEMORY    = -5,
  PATTN_ERR_BACKEND          = -6, /* driver/runtime/compiler failure; message has detail */
  PATTN_ERR_COMM             = -7  /* distributed communication failure                  */
} pattn_status;
PATTN_API const char *pattn_status_string(pattn_status s);
PATTN_API const char *pattn_version(void);     /* "MAJOR.MINOR.PATCH" */
PATTN_API unsigned    pattn_version_api(void); /* 0x00MMmmpp */

/* ---- context: one backend, one device, one in-order queue/stream ---- */
typedef struct pattn_context pattn_context;
typedef struct pattn_options {
  size_t      struct_size; /* sizeof(pattn_options), for ABI growth */
  const char *backend;     /* "auto" | "cpu" | "opencl" | "cuda"; NULL: $PATTN_BACKEND, else "auto" */
  const char *device;      /* index or name substring; NULL: $PATTN_DEVICE */
  int         num_threads; /* CPU backend; 0: $PATTN_NUM_THREADS, else all cores */
  /* pattn extension: CPU backend in reference mode (straight loops, f64 accumulation: the
   * oracle of the conformance suite). -1: $PATTN_CPU_REFERENCE (default), 0: fast, 1: reference.
   * Read only when struct_size covers it. */
  int         cpu_reference;
} pattn_options;
PATTN_API void         pattn_options_default(pattn_options *opt);
PATTN_API pattn_status pattn_context_create(pattn_context **ctx, const pattn_options *opt /* NULL ok */);
PATTN_API void         pattn_context_destroy(pattn_context *ctx);       /* NULL ok */
PATTN_API const char  *pattn_context_backend(const pattn_context *ctx); /* "cpu", "opencl", "cuda" */
PATTN_API const char  *pattn_context_device(const pattn_context *ctx);  /* human-readable name */
/* Message of the last failure, "" if none. With ctx == NULL: the last failure of
 * pattn_context_create on this thread (there is no context to hold it). */
PATTN_API const char  *pattn_last_error(const pattn_context *ctx);
PATTN_API pattn_status pattn_synchronize(pattn_context *ctx);
PATTN_API pattn_status pattn_memory_stats(const pattn_context *ctx, size_t *in_use, size_t *peak);
PATTN_API void         pattn_memory_reset_peak(pattn_context *ctx);
/* pattn extension: the device's own free and total memory (cudaMemGetInfo on CUDA), to
 * cross-check pattn_memory_stats; PATTN_ERR_UNSUPPORTED where the backend cannot tell. */
PATTN_API pattn_status pattn_device_memory(pattn_context *ctx, size_t *free_bytes, size_t *total_bytes);

/* pattn extension: timing on the context's queue. A recorded event marks the point after
 * everything enqueued so far; elapsed waits for `end` and gives the milliseconds between the
 * two (device events on GPU backends: CUDA events, OpenCL profiling markers; a synchronised
 * host clock where the backend has none). Both events must belong to one context. */
typedef struct pattn_event pattn_event;
PATTN_API pattn_status pattn_event_record(pattn_context *ctx, pattn_event **ev);
PATTN_API pattn_status pattn_event_elapsed(const pattn_event *start, const pattn_event *end, double *ms);
PATTN_API void         pattn_event_destroy(pattn_event *ev); /* NULL ok */

/* backends that can run here: fills names[0..*count). On entry *count is the capacity of
 * names (pattn extension: a capacity below the number found is INVALID_ARGUMENT, with the
 * number needed in *count); an array of PATTN_MAX_BACKENDS entries always suffices. */
#define PATTN_MAX_BACKENDS 3
PATTN_API pattn_status pattn_backends_available(const char **names, int *count);
/* pattn extension: why `backend` cannot run here ("" if it can), for pattn-info. */
PATTN_API const char *pattn_backend_unavailable_reason(const char *backend);

/* ---- tensors: device memory owned by a context ---- */
typedef enum pattn_dtype { PATTN_F32 = 0, PATTN_F16 = 1, PATTN_BF16 = 2 } pattn_dtype;
typedef struct pattn_tensor pattn_tensor;
#define PATTN_MAX_DIMS 8
PATTN_API pattn_status pattn_tensor_create(pattn_context *ctx, pattn_dtype dt, int ndim,
                                           const int64_t *shape, pattn_tensor **t);
PATTN_API void         pattn_tensor_destroy(pattn_tensor *t); /* NULL ok */
/* bytes must equal the tensor's size in its dtype */
PATTN_API pattn_status pattn_tensor_write(pattn_tensor *t, const void *src, size_t bytes);
PATTN_API pattn_status pattn_tensor_read(const pattn_tensor *t, void *dst, size_t bytes); /* blocking */
/* count must equal the number of elements; converts with round-to-nearest-even */
PATTN_API pattn_status pattn_tensor_write_f32(pattn_tensor *t, const float *src, size_t count);
PATTN_API pattn_status pattn_tensor_read_f32(const pattn_tensor *t, float *dst, size_t count);
/* pattn extension: every element := value (rounded to the dtype, round-to-nearest-even),
 * enqueued on the context's queue like an operator (asynchronous on GPU backends) */
PATTN_API pattn_status pattn_tensor_fill(pattn_tensor *t, float value);
/* pattn extension: what a tensor is */
PATTN_API pattn_dtype  pattn_tensor_dtype(const pattn_tensor *t);
PATTN_API int          pattn_tensor_ndim(const pattn_tensor *t);
PATTN_API int64_t      pattn_tensor_dim(const pattn_tensor *t, int i); /* -1 if out of range */
PATTN_API size_t       pattn_tensor_bytes(const pattn_tensor *t);
PATTN_API size_t       pattn_dtype_size(pattn_dtype dt);                /* 0 if not a dtype */

/* ---- descriptors (zero-initialise, set struct_size, then fill) ---- */
typedef enum pattn_layout { PATTN_LAYOUT_BHND = 0, PATTN_LAYOUT_BNHD = 1 } pattn_layout;
typedef enum pattn_algo { PATTN_ALGO_AUTO = 0, PATTN_ALGO_NAIVE = 1, PATTN_ALGO_FLASH = 2 } pattn_algo;
typedef enum pattn_precision { PATTN_PRECISION_DEFAULT = 0, PATTN_PRECISION_TF32 = 1 } pattn_precision;

typedef struct pattn_attention_desc {
  size_t struct_size; pattn_layout layout; float scale; /* 0: 1/sqrt(dk) */
  int causal; pattn_algo algo; pattn_precision precision;
} pattn_attention_desc;
PATTN_API pattn_status pattn_attention(pattn_context *ctx, const pattn_attention_desc *desc,
    const pattn_tensor *q, const pattn_tensor *k, const pattn_tensor *v,
    const pattn_tensor *mask /* NULL */, pattn_tensor *out, pattn_tensor *lse /* NULL */);
PATTN_API pattn_status pattn_attention_backward(pattn_context *ctx, const pattn_attention_desc *desc,
    const pattn_tensor *q, const pattn_tensor *k, const pattn_tensor *v,
    const pattn_tensor *out, const pattn_tensor *lse, const pattn_tensor *dout,
    pattn_tensor *dq, pattn_tensor *dk, pattn_tensor *dv);

typedef enum pattn_dilated_merge { PATTN_DILATED_MERGE_HEAD_GROUPS = 0, PATTN_DILATED_MERGE_LSE = 1 } pattn_dilated_merge;
typedef struct pattn_dilated_desc {
  size_t struct_size; pattn_layout layout; float scale; int causal;
  int num_segments; const int64_t *segment_lengths; const int64_t *dilation_rates;
  pattn_dilated_merge merge;
  /* pattn extension (read only when struct_size covers it): 1 copies each group's dilated
   * positions into contiguous buffers, attends there and copies back, as the original
   * DilatedAttention does; same result, kept to measure what the fused default saves. */
  int gather;
} pattn_dilated_desc;
PATTN_API pattn_status pattn_dilated_attention(pattn_context *ctx, const pattn_dilated_desc *desc,
    const pattn_tensor *q, const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out);

typedef struct pattn_comm pattn_comm; /* see pattn/pattn_mpi.h, pattn/pattn_nccl.h */
PATTN_API void pattn_comm_destroy(pattn_comm *c); /* NULL ok */
typedef struct pattn_ring_desc {
  size_t struct_size; pattn_layout layout; float scale; int causal;
  int ring_size; /* one context: number of K/V chunks; with a comm: ignored (world size) */
  int zigzag;    /* with a comm: zigzag sharding for causal balance */
} pattn_ring_desc;
PATTN_API pattn_status pattn_ring_attention(pattn_context *ctx, const pattn_ring_desc *desc,
    pattn_comm *comm /* NULL: one context */, const pattn_tensor *q, const pattn_tensor *k,
    const pattn_tensor *v, pattn_tensor *out, pattn_tensor *lse /* NULL */);
PATTN_API pattn_status pattn_ring_dilated_attention(pattn_context *ctx, const pattn_dilated_desc *desc,
    pattn_comm *comm, const pattn_tensor *q, const pattn_tensor *k, const pattn_tensor *v,
    pattn_tensor *out);

typedef struct pattn_block_sparse_desc {
  size_t struct_size; pattn_layout layout; float scale; int causal;
  int block_size; int layout_heads; /* 1 (shared) or h */
  const uint8_t *block_layout;      /* host array [layout_heads][nqb][nkb], 0/1 */
} pattn_block_sparse_desc;
PATTN_API pattn_status pattn_block_sparse_attention(pattn_context *ctx, const pattn_block_sparse_desc *desc,
    const pattn_tensor *q, const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out);
/* layout builders: write [nqb][nkb] 0/1 into dst, OR-ing with what is there */
PATTN_API void pattn_block_layout_local(uint8_t *dst, int nqb, int nkb, int window);
PATTN_API void pattn_block_layout_dilated(uint8_t *dst, int nqb, int nkb, int nrates, const int *rates);
PATTN_API void pattn_block_layout_global(uint8_t *dst, int nqb, int nkb, int global_blocks);
PATTN_API void pattn_block_layout_random(uint8_t *dst, int nqb, int nkb, double p, uint64_t seed);
PATTN_API void pattn_block_layout_causal(uint8_t *dst, int nqb, int nkb); /* AND-masks J <= I */

typedef enum pattn_mha_core { PATTN_MHA_DENSE, PATTN_MHA_DILATED, PATTN_MHA_RING, PATTN_MHA_BLOCK_SPARSE } pattn_mha_core;
typedef struct pattn_mha_desc {
  size_t struct_size; int64_t embed_dim; int num_heads; pattn_dtype dtype;
  int bias; int qk_norm; int sub_ln; pattn_mha_core core;
  const void *core_desc; /* the core's descriptor: pattn_attention_desc*, pattn_dilated_desc*, ... */
} pattn_mha_desc;
typedef struct pattn_mha pattn_mha;
PATTN_API pattn_status pattn_mha_create(pattn_context *ctx, const pattn_mha_desc *desc, pattn_mha **mha);
PATTN_API void         pattn_mha_destroy(pattn_mha *mha);
PATTN_API pattn_status pattn_mha_init_xavier(pattn_mha *mha, uint64_t seed, float gamma);
/* names: "q_proj.weight" "k_proj.weight" "v_proj.weight" "out_proj.weight" ([E, E]),
 * "*_proj.bias" (with bias), "q_norm.weight/.bias", "k_norm.weight/.bias" (with qk_norm),
 * "sub_ln.weight/.bias" (with sub_ln) ([E]) */
PATTN_API pattn_status pattn_mha_set_weight(pattn_mha *mha, const char *name,
                                            const float *src, size_t count);
PATTN_API pattn_status pattn_mha_forward(pattn_mha *mha, const pattn_tensor *x_q, const pattn_tensor *x_kv,
                                         pattn_tensor *y);

PATTN_API pattn_status pattn_md_lrpe_cosine_forward(pattn_context *ctx, const pattn_tensor *x,
    const pattn_tensor *theta, int ndims, const int64_t *shape, int64_t extra_tokens,
    pattn_tensor *out, pattn_tensor *angle_cache /* NULL */);
PATTN_API pattn_status pattn_md_lrpe_cosine_backward(pattn_context *ctx, const pattn_tensor *dout,
    const pattn_tensor *theta, int ndims, const int64_t *shape, int64_t extra_tokens,
    const pattn_tensor *angle_cache /* NULL: recompute */, pattn_tensor *dx);

#ifdef __cplusplus
}
#endif
#endif /* PATTN_PATTN_H */

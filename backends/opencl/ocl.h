/* OpenCL backend internals: per-context state, program/kernel cache, launch helpers.
 *
 * Everything the module needs from the core comes through ocl_core (set by the entry
 * point). Compiled programs and kernels live in the context's ocl_state, never in process
 * globals, so two contexts (or two devices) never share stale handles. */
#ifndef PATTN_OCL_H
#define PATTN_OCL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include "backend.h"

extern const pattn_core_api *ocl_core;

/* One compiled program (one source file with one option string). */
typedef struct ocl_program {
  char               *key;  /* "source|options" */
  cl_program          prog;
  struct ocl_program *next;
} ocl_program;

/* One kernel of a compiled program; kernels are not shared between contexts. */
typedef struct ocl_kernel {
  char              *key;   /* "source|options|kernel" */
  cl_kernel          kern;
  size_t             wg_max; /* CL_KERNEL_WORK_GROUP_SIZE */
  struct ocl_kernel *next;
} ocl_kernel;

typedef struct ocl_state {
  pattn_context   *ctx;
  cl_platform_id   platform;
  cl_device_id     device;
  cl_context       context;
  cl_command_queue queue;
  char             device_name[256];
  char             platform_name[256];
  char             driver_version[128];
  char             device_version[128];
  cl_ulong         local_mem;     /* bytes of local memory per work-group */
  size_t           max_wg;        /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
  cl_uint          compute_units; /* CL_DEVICE_MAX_COMPUTE_UNITS, at least 1 */
  cl_ulong         max_alloc;     /* CL_DEVICE_MAX_MEM_ALLOC_SIZE */
  cl_uint          mem_align;     /* CL_DEVICE_MEM_BASE_ADDR_ALIGN, bits */
  int              cache_on;      /* on-disk binary cache enabled */
  char             cache_dir[1024];
  ocl_program     *programs;
  ocl_kernel      *kernels;
} ocl_state;

static inline ocl_state *ocl_state_of(const pattn_context *ctx) {
  return (ocl_state *)ocl_core->state(ctx);
}

/* ---- ocl_util.c ---- */
const char  *ocl_err_name(cl_int err);
/* PATTN_OK for CL_SUCCESS; else records "<what>: <CL error>" on ctx. Allocation failures
 * map to PATTN_ERR_OUT_OF_MEMORY, everything else to PATTN_ERR_BACKEND. */
pattn_status ocl_check(pattn_context *ctx, cl_int err, const char *what);
/* strdup into malloc memory; NULL on failure */
char        *ocl_strdup(const char *s);
uint64_t     ocl_fnv1a(uint64_t h, const void *data, size_t n);
#define OCL_FNV_INIT 0xcbf29ce484222325ull

/* Kernel argument accumulation: the first failing clSetKernelArg is remembered. */
typedef struct ocl_args {
  cl_kernel k;
  cl_uint   n;
  cl_int    err;
} ocl_args;
static inline void ocl_arg(ocl_args *a, size_t size, const void *p) {
  if (a->err == CL_SUCCESS) a->err = clSetKernelArg(a->k, a->n, size, p);
  a->n++;
}
#define OCL_ARG(a, v) ocl_arg(&(a), sizeof(v), &(v))
/* A view as kernel argument: (offset, sb, ss, sh, sn, 0, 0, 0); extents of size 1 get
 * stride 0 so that broadcast views (masks) index element 0 there. */
cl_long8     ocl_view_arg(const pattn_view *v);

/* Enqueue k over global[0..dims) (local may be NULL) and check. */
pattn_status ocl_launch(pattn_context *ctx, cl_kernel k, cl_uint dims, const size_t *global,
                        const size_t *local, const char *what);
/* 1-D launch of `total` work-items padded to the work-group size (the kernel bounds-checks
 * its last argument, total). */
struct ocl_kernel;
pattn_status ocl_launch_1d(pattn_context *ctx, const struct ocl_kernel *k, size_t total, const char *what);
/* Round x up to a multiple of m. */
static inline size_t ocl_round_up(size_t x, size_t m) { return (x + m - 1) / m * m; }

/* ---- ocl_device.c ---- */
/* Choose platform and device (PATTN_OPENCL_PLATFORM, device string, else first GPU, else
 * first device). On failure the message lists what was found. */
pattn_status ocl_choose_device(pattn_context *ctx, const char *device, cl_platform_id *platform,
                               cl_device_id *dev);
/* Probe: "why" when nothing can run; device names one per line. */
pattn_status ocl_list_devices(char *why, size_t why_len, char *devices, size_t devices_len);

/* ---- ocl_program.c ---- */
/* The kernel `name` of source file `source` (without .cl) compiled with `options`
 * (-D defines); built on first use, from the disk cache when possible. */
pattn_status ocl_get_kernel(pattn_context *ctx, ocl_state *st, const char *source,
                            const char *options, const char *name, ocl_kernel **out);
void         ocl_release_programs(ocl_state *st);

/* ---- ocl_cache.c ---- */
/* Resolve PATTN_CACHE_DIR / XDG_CACHE_HOME / HOME into st->cache_dir (cache_on = 0: off). */
void         ocl_cache_init(ocl_state *st);
/* Key text of a program; malloc'd, NULL on failure. */
char        *ocl_cache_key(const ocl_state *st, const char *source_hash, const char *options);
/* Load a cached binary for key: 1 and *bin (malloc'd) on success, 0 if none or invalid. */
int          ocl_cache_load(const ocl_state *st, const char *key, unsigned char **bin, size_t *size);
/* Store a binary for key (temp file then rename); failures are only logged. */
void         ocl_cache_store(const ocl_state *st, const char *key, const unsigned char *bin, size_t size);

/* ---- ops ---- */
const char  *ocl_dtype_define(pattn_dtype dt); /* "0" f32, "1" f16, "2" bf16 */
pattn_status ocl_fill(pattn_context *ctx, const pattn_view *dst, float value);
pattn_status ocl_copy(pattn_context *ctx, const pattn_view *dst, const pattn_view *src, float alpha);
pattn_status ocl_merge(pattn_context *ctx, const pattn_view *acc_out, const pattn_view *acc_lse,
                       const pattn_view *part_out, const pattn_view *part_lse);
pattn_status ocl_layernorm(pattn_context *ctx, int64_t rows, int64_t cols, float eps, pattn_mat x,
                           pattn_mat gamma, pattn_mat beta, pattn_mat y);
pattn_status ocl_lrpe_forward(pattn_context *ctx, const pattn_lrpe_args *a);
pattn_status ocl_lrpe_backward(pattn_context *ctx, const pattn_lrpe_args *a);
pattn_status ocl_linear(pattn_context *ctx, int64_t m, int64_t n, int64_t k, pattn_mat x,
                        pattn_mat w, pattn_mat bias, pattn_mat y);
pattn_status ocl_attention(pattn_context *ctx, const pattn_attn_args *a);
pattn_status ocl_block_sparse(pattn_context *ctx, const pattn_block_sparse_args *a);
pattn_status ocl_attention_backward(pattn_context *ctx, const pattn_attn_bwd_args *a);

/* CLBlast status (CLBlastStatusCode) to pattn status, with a message on failure. */
pattn_status ocl_clblast_check(pattn_context *ctx, int code, const char *what);

/* Workspace buffers (cl_mem), counted in the context's memory statistics. */
pattn_status ocl_scratch(pattn_context *ctx, size_t bytes, cl_mem *buf, const char *what);
void         ocl_scratch_free(pattn_context *ctx, cl_mem buf, size_t bytes);

/* A dense contiguous f32 view [nb][ns][nh][n][d] over a scratch buffer. */
pattn_view   ocl_dense_view(cl_mem buf, pattn_dtype dt, int64_t nb, int64_t ns, int64_t nh,
                            int64_t n, int64_t d);

#endif /* PATTN_OCL_H */

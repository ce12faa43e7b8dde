/* CUDA backend module (libpattn-cuda.so): device discovery, per-context state (one device,
 * one stream, one cuBLAS handle), raw buffers, and the vtable. Linked against the static
 * CUDA runtime, which loads the driver (libcuda.so.1) lazily: on a machine without a
 * driver the module still loads, and probe/init answer PATTN_ERR_NO_DEVICE with the
 * runtime's reason. The only exported symbol is pattn_backend_entry. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_internal.h"

const pattn_core_api *cuda_core;

pattn_status cuda_fail(pattn_context *ctx, cudaError_t err, const char *what) {
  pattn_status st = err == cudaErrorMemoryAllocation ? PATTN_ERR_OUT_OF_MEMORY : PATTN_ERR_BACKEND;
  (void)cudaGetLastError(); /* clear a non-sticky error so later calls are not blamed for it */
  return cuda_core->error(ctx, st, "cuda: %s: %s (%s)", what, cudaGetErrorString(err), cudaGetErrorName(err));
}

pattn_status cublas_fail(pattn_context *ctx, cublasStatus_t err, const char *what) {
  pattn_status st = err == CUBLAS_STATUS_ALLOC_FAILED ? PATTN_ERR_OUT_OF_MEMORY : PATTN_ERR_BACKEND;
  return cuda_core->error(ctx, st, "cublas: %s: %s (%s)", what, cublasGetStatusString(err), cublasGetStatusName(err));
}

pattn_status cuda_enter(pattn_context *ctx, cuda_state **stp) {
  cuda_state *st = cuda_state_of(ctx);
  if (!st) return cuda_core->error(ctx, PATTN_ERR_BACKEND, "cuda: context has no backend state");
  int cur = -1;
  CU_TRY(ctx, cudaGetDevice(&cur), "cudaGetDevice");
  if (cur != st->device) CU_TRY(ctx, cudaSetDevice(st->device), "cudaSetDevice");
  *stp = st;
  return PATTN_OK;
}

pattn_status cuda_ws_alloc(pattn_context *ctx, size_t bytes, void **p, const char *what) {
  *p = NULL;
  pattn_status s = cuda_core->alloc(ctx, bytes, p);
  if (s != PATTN_OK) return s; /* the core (or our buf_alloc) recorded why */
  if (!*p) return cuda_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "cuda: %s: no workspace of %zu bytes", what, bytes);
  return PATTN_OK;
}

void cuda_ws_free(pattn_context *ctx, void *p, size_t bytes) {
  if (p) cuda_core->free(ctx, p, bytes);
}

/* ---- discovery ---- */

static pattn_status cuda_count(int *count, char *why, size_t why_len) {
  *count = 0;
  cudaError_t e = cudaGetDeviceCount(count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (why && why_len) snprintf(why, why_len, "no usable CUDA device (no NVIDIA driver or GPU?): %s (%s)", cudaGetErrorString(e), cudaGetErrorName(e));
    *count = 0;
    return PATTN_ERR_NO_DEVICE;
  }
  if (*count <= 0) {
    if (why && why_len) snprintf(why, why_len, "no CUDA device found");
    return PATTN_ERR_NO_DEVICE;
  }
  return PATTN_OK;
}

static pattn_status cuda_probe(char *why, size_t why_len, char *devices, size_t devices_len) {
  int count = 0;
  if (why && why_len) why[0] = '\0';
  if (devices && devices_len) devices[0] = '\0';
  pattn_status s = cuda_count(&count, why, why_len);
  if (s != PATTN_OK) return s;
  if (devices && devices_len) {
    size_t used = 0;
    for (int i = 0; i < count; i++) {
      struct cudaDeviceProp p;
      if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
      int w = snprintf(devices + used, devices_len - used, "%d: %s (sm_%d%d)\n", i, p.name, p.major, p.minor);
      if (w < 0 || (size_t)w >= devices_len - used) break;
      used += (size_t)w;
    }
  }
  return PATTN_OK;
}

/* device: NULL or "" (device 0), an index, or a substring of the device name. */
static int pick_device(const char *device, int count) {
  if (!device || !*device) return 0;
  char *end = NULL;
  long idx = strtol(device, &end, 10);
  if (end && *end == '\0') return idx >= 0 && idx < count ? (int)idx : -1;
  for (int i = 0; i < count; i++) {
    struct cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) == cudaSuccess && strstr(p.name, device)) return i;
  }
  return -1;
}

/* The context's own memory pool, which keeps what is freed to it instead of returning it to
 * the driver at every synchronisation (the default pool's release threshold is 0), so a call
 * that takes a workspace does not map its memory anew each time (on the H200, run 53: the
 * backward at FlashAttention's shapes 0-6% faster, the forward unchanged). The memory stays reserved until the context is destroyed, or until an allocation fails
 * (then the pool is trimmed and the allocation tried once more). Without a pool of its own
 * (creation failed) the context uses the device's default pool. */
static void make_pool(cuda_state *st) {
  struct cudaMemPoolProps props;
  memset(&props, 0, sizeof props);
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = st->device;
  if (cudaMemPoolCreate(&st->pool, &props) != cudaSuccess) {
    (void)cudaGetLastError();
    st->pool = NULL;
    return;
  }
  uint64_t keep = UINT64_MAX;
  if (cudaMemPoolSetAttribute(st->pool, cudaMemPoolAttrReleaseThreshold, &keep) != cudaSuccess) {
    (void)cudaGetLastError();
    (void)cudaMemPoolDestroy(st->pool);
    st->pool = NULL;
  }
}

static void cuda_destroy(void *state) {
  cuda_state *st = state;
  if (!st) return;
  (void)cudaSetDevice(st->device);
  if (st->stream) (void)cudaStreamSynchronize(st->stream);
  if (st->blas) (void)cublasDestroy(st->blas);
  if (st->stream) (void)cudaStreamDestroy(st->stream);
  /* memory still allocated from it is released when the last of it is freed */
  if (st->pool) (void)cudaMemPoolDestroy(st->pool);
  free(st);
}

static pattn_status cuda_init(pattn_context *ctx, const pattn_options *opt, const char *device, void **state,
                              char *name, size_t name_len) {
  (void)opt;
  *state = NULL;
  char why[256];
  int count = 0;
  if (cuda_count(&count, why, sizeof why) != PATTN_OK) return cuda_core->error(ctx, PATTN_ERR_NO_DEVICE, "cuda: %s", why);
  int dev = pick_device(device, count);
  if (dev < 0)
    return cuda_core->error(ctx, PATTN_ERR_NO_DEVICE, "cuda: no device matches '%s' (%d device%s present)", device,
                            count, count == 1 ? "" : "s");
  struct cudaDeviceProp p;
  CU_TRY(ctx, cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  CU_TRY(ctx, cudaSetDevice(dev), "cudaSetDevice");

  cuda_state *st = calloc(1, sizeof *st);
  if (!st) return cuda_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "cuda: out of host memory");
  st->device = dev;
  st->cc = p.major * 10 + p.minor;
  st->num_sms = p.multiProcessorCount;
  st->smem_optin = p.sharedMemPerBlockOptin > p.sharedMemPerBlock ? p.sharedMemPerBlockOptin : p.sharedMemPerBlock;
  /* PATTN_CUDA_SMEM_LIMIT (bytes) caps the shared memory the kernels plan with, so the
   * Pascal-sized (48 KB) kernel variants can be tested on a newer GPU. */
  const char *cap = getenv("PATTN_CUDA_SMEM_LIMIT");
  if (cap && *cap) {
    long long c = strtoll(cap, NULL, 10);
    if (c > 0 && (size_t)c < st->smem_optin) st->smem_optin = (size_t)c;
  }
  int pools = 0;
  st->async_alloc = cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, dev) == cudaSuccess && pools;
  if (st->async_alloc) make_pool(st);
  cudaError_t e = cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking);
  if (e != cudaSuccess) {
    st->stream = NULL;
    cuda_destroy(st);
    return cuda_fail(ctx, e, "cudaStreamCreate");
  }
  cublasStatus_t b = cublasCreate(&st->blas);
  if (b == CUBLAS_STATUS_SUCCESS) b = cublasSetStream(st->blas, st->stream);
  if (b != CUBLAS_STATUS_SUCCESS) {
    cuda_destroy(st);
    return cublas_fail(ctx, b, "cublasCreate");
  }
  snprintf(name, name_len, "%s (sm_%d%d)", p.name, p.major, p.minor);
  *state = st;
  return PATTN_OK;
}

/* ---- buffers ---- */
static cudaError_t pool_alloc(cuda_state *st, void **p, size_t bytes) {
  if (!st->async_alloc) return cudaMalloc(p, bytes);
  if (!st->pool) return cudaMallocAsync(p, bytes, st->stream);
  cudaError_t e = cudaMallocFromPoolAsync(p, bytes, st->pool, st->stream);
  if (e != cudaErrorMemoryAllocation) return e;
  /* what the pool keeps may be what is missing: wait for the frees queued on the stream,
   * give back everything unused, and try once more */
  (void)cudaGetLastError();
  e = cudaStreamSynchronize(st->stream);
  if (e == cudaSuccess) e = cudaMemPoolTrimTo(st->pool, 0);
  if (e == cudaSuccess) e = cudaMallocFromPoolAsync(p, bytes, st->pool, st->stream);
  return e;
}

static pattn_status cuda_buf_alloc(pattn_context *ctx, size_t bytes, void **buf) {
  cuda_state *st = NULL;
  *buf = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK) return s;
  if (bytes == 0) bytes = 256; /* a real pointer for empty tensors */
  void *p = NULL;
  cudaError_t e = pool_alloc(st, &p, bytes);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return cuda_core->error(ctx, e == cudaErrorMemoryAllocation ? PATTN_ERR_OUT_OF_MEMORY : PATTN_ERR_BACKEND,
                            "cuda: cannot allocate %zu bytes of device memory: %s", bytes, cudaGetErrorString(e));
  }
  *buf = p;
  return PATTN_OK;
}

static void cuda_buf_free(pattn_context *ctx, void *buf) {
  cuda_state *st = NULL;
  if (!buf || cuda_enter(ctx, &st) != PATTN_OK) return;
  cudaError_t e = st->async_alloc ? cudaFreeAsync(buf, st->stream) : cudaFree(buf);
  if (e != cudaSuccess && cuda_core->log) cuda_core->log(PATTN_LOG_WARN, "cuda: freeing a buffer failed: %s", cudaGetErrorString(e));
}

static pattn_status cuda_buf_write(pattn_context *ctx, void *buf, size_t offset, const void *src, size_t bytes) {
  cuda_state *st = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK || bytes == 0) return s;
  CU_TRY(ctx, cudaMemcpyAsync((char *)buf + offset, src, bytes, cudaMemcpyHostToDevice, st->stream), "copy to device");
  /* the caller may reuse src as soon as we return */
  CU_TRY(ctx, cudaStreamSynchronize(st->stream), "copy to device");
  return PATTN_OK;
}

static pattn_status cuda_buf_read(pattn_context *ctx, const void *buf, size_t offset, void *dst, size_t bytes) {
  cuda_state *st = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK) return s;
  if (bytes) CU_TRY(ctx, cudaMemcpyAsync(dst, (const char *)buf + offset, bytes, cudaMemcpyDeviceToHost, st->stream), "copy from device");
  CU_TRY(ctx, cudaStreamSynchronize(st->stream), "copy from device (an earlier operation may have failed)");
  return PATTN_OK;
}

static pattn_status cuda_synchronize(pattn_context *ctx) {
  cuda_state *st = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK) return s;
  CU_TRY(ctx, cudaStreamSynchronize(st->stream), "synchronize");
  return PATTN_OK;
}

static pattn_status cuda_device_memory(pattn_context *ctx, size_t *free_bytes, size_t *total_bytes) {
  cuda_state *st = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK) return s;
  CU_TRY(ctx, cudaStreamSynchronize(st->stream), "synchronize");
  CU_TRY(ctx, cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
  return PATTN_OK;
}

static pattn_status cuda_event_record(pattn_context *ctx, void **ev) {
  cuda_state *st = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK) return s;
  cudaEvent_t e;
  CU_TRY(ctx, cudaEventCreate(&e), "cudaEventCreate");
  cudaError_t err = cudaEventRecord(e, st->stream);
  if (err != cudaSuccess) {
    cudaEventDestroy(e);
    return cuda_core->error(ctx, PATTN_ERR_BACKEND, "cuda: cudaEventRecord: %s", cudaGetErrorString(err));
  }
  *ev = e;
  return PATTN_OK;
}

static pattn_status cuda_event_elapsed(pattn_context *ctx, void *start, void *end, double *ms) {
  cuda_state *st = NULL;
  pattn_status s = cuda_enter(ctx, &st);
  if (s != PATTN_OK) return s;
  float f = 0.0f;
  CU_TRY(ctx, cudaEventSynchronize((cudaEvent_t)end), "cudaEventSynchronize (an earlier operation may have failed)");
  CU_TRY(ctx, cudaEventElapsedTime(&f, (cudaEvent_t)start, (cudaEvent_t)end), "cudaEventElapsedTime");
  *ms = f;
  return PATTN_OK;
}

static void cuda_event_destroy(pattn_context *ctx, void *ev) { (void)cudaEventDestroy((cudaEvent_t)ev); }

#ifdef PATTN_CUDA_NCCL
pattn_status cuda_comm_create_native(pattn_context *ctx, void *native_comm, pattn_comm **out); /* cuda_nccl.c */
#endif

static const pattn_backend cuda_backend = {
  .abi = PATTN_BACKEND_ABI,
  .name = "cuda",
  .probe = cuda_probe,
  .init = cuda_init,
  .destroy = cuda_destroy,
  .buf_alloc = cuda_buf_alloc,
  .buf_free = cuda_buf_free,
  .buf_write = cuda_buf_write,
  .buf_read = cuda_buf_read,
  .synchronize = cuda_synchronize,
  .fill = cuda_fill,
  .copy = cuda_copy,
  .merge = cuda_merge,
  .linear = cuda_linear,
  .layernorm = cuda_layernorm,
  .attention = cuda_attention,
  .attention_backward = cuda_attention_backward,
  .block_sparse = cuda_block_sparse,
  .lrpe_forward = cuda_lrpe_forward,
  .lrpe_backward = cuda_lrpe_backward,
#ifdef PATTN_CUDA_NCCL
  .comm_create_native = cuda_comm_create_native,
#endif
  .device_memory = cuda_device_memory,
  .event_record = cuda_event_record,
  .event_elapsed = cuda_event_elapsed,
  .event_destroy = cuda_event_destroy,
};

__attribute__((visibility("default"))) const pattn_backend *pattn_backend_entry(const pattn_core_api *core);

const pattn_backend *pattn_backend_entry(const pattn_core_api *core) {
  if (!core || core->abi != PATTN_BACKEND_ABI) return NULL;
  cuda_core = core;
  return &cuda_backend;
}

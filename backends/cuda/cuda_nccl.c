/* The NCCL communicator of the cuda backend (pattn/pattn_nccl.h, reached from libpattn
 * through pattn_backend.comm_create_native). Transfers run as one ncclGroup of
 * ncclSend/ncclRecv per batch on a stream of their own: an event recorded on the context's
 * stream makes them wait for the data they send (and for the last reads of the buffers they
 * receive into), and the context's stream waits on an event after them, so the host never
 * blocks and the next K/V shard travels while the current one is computed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* nccl.h declares a few functions with () */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop

#include "comm.h"
#include "cuda_internal.h"

#define SCRATCH_N 64 /* int64 slots for the agreement allreduce */

typedef struct nccl_impl {
  ncclComm_t   comm;    /* the caller's: not ours to destroy */
  int          device;
  cudaStream_t compute; /* the context's stream */
  cudaStream_t stream;  /* transfers */
  cudaEvent_t  ready, done;
  int          in_flight;
  int64_t     *scratch; /* device memory for allreduce_max */
} nccl_impl;

static pattn_status nccl_fail(pattn_comm *c, pattn_context *ctx, ncclResult_t r, const char *what) {
  nccl_impl *m = c->impl;
  const char *last = m && m->comm ? ncclGetLastError(m->comm) : NULL;
  snprintf(c->error, sizeof c->error, "nccl: %s failed on rank %d: %s%s%s", what, c->rank, ncclGetErrorString(r),
           last && *last ? ": " : "", last ? last : "");
  return cuda_core->error(ctx, PATTN_ERR_COMM, "%s", c->error);
}

static pattn_status cu_fail(pattn_comm *c, pattn_context *ctx, cudaError_t e, const char *what) {
  (void)cudaGetLastError();
  snprintf(c->error, sizeof c->error, "nccl: %s failed on rank %d: %s (%s)", what, c->rank, cudaGetErrorString(e),
           cudaGetErrorName(e));
  return cuda_core->error(ctx, PATTN_ERR_COMM, "%s", c->error);
}

#define NC_TRY(expr, what)                                        \
  do {                                                            \
    ncclResult_t nc_r_ = (expr);                                  \
    if (nc_r_ != ncclSuccess) return nccl_fail(c, ctx, nc_r_, (what)); \
  } while (0)
#define CUC_TRY(expr, what)                                       \
  do {                                                            \
    cudaError_t cu_e_ = (expr);                                   \
    if (cu_e_ != cudaSuccess) return cu_fail(c, ctx, cu_e_, (what)); \
  } while (0)

/* A failure of an earlier asynchronous operation (a peer that died, a network error). */
static pattn_status check_async(pattn_comm *c, pattn_context *ctx) {
  nccl_impl *m = c->impl;
  ncclResult_t ar = ncclSuccess;
  NC_TRY(ncclCommGetAsyncError(m->comm, &ar), "ncclCommGetAsyncError");
  if (ar != ncclSuccess && ar != ncclInProgress) return nccl_fail(c, ctx, ar, "an earlier transfer");
  return PATTN_OK;
}

static pattn_status nccl_start(pattn_comm *c, pattn_context *ctx, const pattn_comm_xfer *x, int n) {
  nccl_impl *m = c->impl;
  if (m->in_flight) {
    snprintf(c->error, sizeof c->error, "nccl: a batch is already in flight");
    return cuda_core->error(ctx, PATTN_ERR_COMM, "%s", c->error);
  }
  CUC_TRY(cudaSetDevice(m->device), "cudaSetDevice");
  pattn_status st = check_async(c, ctx);
  if (st != PATTN_OK) return st;
  CUC_TRY(cudaEventRecord(m->ready, m->compute), "cudaEventRecord");
  CUC_TRY(cudaStreamWaitEvent(m->stream, m->ready, 0), "cudaStreamWaitEvent");
  NC_TRY(ncclGroupStart(), "ncclGroupStart");
  for (int i = 0; i < n; i++) {
    ncclResult_t r = x[i].dir == PATTN_COMM_SEND ? ncclSend(x[i].ptr, x[i].bytes, ncclUint8, x[i].peer, m->comm, m->stream)
                                                 : ncclRecv(x[i].ptr, x[i].bytes, ncclUint8, x[i].peer, m->comm, m->stream);
    if (r != ncclSuccess) {
      (void)ncclGroupEnd();
      return nccl_fail(c, ctx, r, x[i].dir == PATTN_COMM_SEND ? "ncclSend" : "ncclRecv");
    }
  }
  NC_TRY(ncclGroupEnd(), "ncclGroupEnd");
  CUC_TRY(cudaEventRecord(m->done, m->stream), "cudaEventRecord");
  m->in_flight = 1;
  return PATTN_OK;
}

static pattn_status nccl_wait(pattn_comm *c, pattn_context *ctx) {
  nccl_impl *m = c->impl;
  if (!m->in_flight) return PATTN_OK;
  m->in_flight = 0;
  CUC_TRY(cudaSetDevice(m->device), "cudaSetDevice");
  /* the context's stream, not the host, waits for the transfers */
  CUC_TRY(cudaStreamWaitEvent(m->compute, m->done, 0), "cudaStreamWaitEvent");
  return check_async(c, ctx);
}

static pattn_status nccl_allreduce_max(pattn_comm *c, pattn_context *ctx, int64_t *vals, int n) {
  nccl_impl *m = c->impl;
  if (n < 1 || n > SCRATCH_N) {
    snprintf(c->error, sizeof c->error, "nccl: allreduce of %d values (at most %d)", n, SCRATCH_N);
    return cuda_core->error(ctx, PATTN_ERR_COMM, "%s", c->error);
  }
  size_t bytes = (size_t)n * sizeof *vals;
  CUC_TRY(cudaSetDevice(m->device), "cudaSetDevice");
  CUC_TRY(cudaMemcpyAsync(m->scratch, vals, bytes, cudaMemcpyHostToDevice, m->stream), "copy to device");
  NC_TRY(ncclAllReduce(m->scratch, m->scratch, (size_t)n, ncclInt64, ncclMax, m->comm, m->stream), "ncclAllReduce");
  CUC_TRY(cudaMemcpyAsync(vals, m->scratch, bytes, cudaMemcpyDeviceToHost, m->stream), "copy from device");
  CUC_TRY(cudaStreamSynchronize(m->stream), "cudaStreamSynchronize");
  return check_async(c, ctx);
}

static void nccl_destroy(pattn_comm *c) {
  nccl_impl *m = c->impl;
  if (m) {
    (void)cudaSetDevice(m->device);
    if (m->stream) (void)cudaStreamSynchronize(m->stream);
    if (m->scratch) (void)cudaFree(m->scratch);
    if (m->ready) (void)cudaEventDestroy(m->ready);
    if (m->done) (void)cudaEventDestroy(m->done);
    if (m->stream) (void)cudaStreamDestroy(m->stream);
    free(m);
  }
  free(c);
}

static const pattn_comm_ops nccl_ops = {nccl_start, nccl_wait, nccl_allreduce_max, nccl_destroy};

pattn_status cuda_comm_create_native(pattn_context *ctx, void *native_comm, pattn_comm **out);

pattn_status cuda_comm_create_native(pattn_context *ctx, void *native_comm, pattn_comm **out) {
  cuda_state *cs = NULL;
  *out = NULL;
  pattn_status st = cuda_enter(ctx, &cs);
  if (st != PATTN_OK) return st;
  ncclComm_t nc = (ncclComm_t)native_comm;
  int dev = -1, rank = -1, size = 0;
  ncclResult_t r = ncclCommCuDevice(nc, &dev);
  if (r == ncclSuccess) r = ncclCommUserRank(nc, &rank);
  if (r == ncclSuccess) r = ncclCommCount(nc, &size);
  if (r != ncclSuccess)
    return cuda_core->error(ctx, PATTN_ERR_COMM, "nccl: cannot query the communicator: %s", ncclGetErrorString(r));
  if (dev != cs->device)
    return cuda_core->error(ctx, PATTN_ERR_INVALID_ARGUMENT,
                            "comm_create_nccl: the NCCL communicator is on CUDA device %d, the context on device %d", dev, cs->device);

  pattn_comm *c = calloc(1, sizeof *c);
  nccl_impl *m = calloc(1, sizeof *m);
  if (!c || !m) {
    free(c);
    free(m);
    return cuda_core->error(ctx, PATTN_ERR_OUT_OF_MEMORY, "comm_create_nccl: out of host memory");
  }
  c->ops = &nccl_ops;
  c->impl = m;
  c->ctx = ctx;
  c->rank = rank;
  c->size = size;
  c->device_direct = 1;
  c->transport = "nccl";
  m->comm = nc;
  m->device = dev;
  m->compute = cs->stream;
  cudaError_t e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&m->ready, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventCreateWithFlags(&m->done, cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaMalloc((void **)&m->scratch, SCRATCH_N * sizeof *m->scratch);
  if (e != cudaSuccess) {
    st = cu_fail(c, ctx, e, "creating the transfer stream");
    nccl_destroy(c);
    return st;
  }
  *out = c;
  return PATTN_OK;
}

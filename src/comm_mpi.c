/* The MPI communicator (pattn/pattn_mpi.h): nonblocking point-to-point batches and a small
 * allreduce over a private duplicate of the caller's communicator, with MPI_ERRORS_RETURN so
 * that a failure becomes PATTN_ERR_COMM with MPI's message instead of an abort. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h> /* Open MPI: MPIX_Query_cuda_support */
#endif

#include "comm.h"
#include "internal.h"
#include "pattn/pattn_mpi.h"

/* MPI counts are ints: larger transfers go as several messages of at most this many bytes,
 * matched in order between the same two ranks. */
#define MSG_MAX ((size_t)1 << 30)
#define TAG 0x7a77

typedef struct mpi_impl {
  MPI_Comm     comm;
  MPI_Request *reqs;
  int          nreq, cap;
} mpi_impl;

static pattn_status mpi_fail(pattn_comm *c, pattn_context *ctx, int rc, const char *what) {
  char msg[MPI_MAX_ERROR_STRING + 1];
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) len = snprintf(msg, sizeof msg, "MPI error code %d", rc);
  msg[len < (int)sizeof msg ? len : (int)sizeof msg - 1] = '\0';
  snprintf(c->error, sizeof c->error, "mpi: %s failed on rank %d: %s", what, c->rank, msg);
  if (ctx) pattn__error(ctx, PATTN_ERR_COMM, "%s", c->error);
  return PATTN_ERR_COMM;
}

static pattn_status mpi_start(pattn_comm *c, pattn_context *ctx, const pattn_comm_xfer *x, int n) {
  mpi_impl *m = c->impl;
  if (m->nreq) {
    snprintf(c->error, sizeof c->error, "mpi: a batch is already in flight");
    return ctx ? pattn__error(ctx, PATTN_ERR_COMM, "%s", c->error) : PATTN_ERR_COMM;
  }
  int need = 0;
  for (int i = 0; i < n; i++) need += (int)((x[i].bytes + MSG_MAX - 1) / MSG_MAX);
  if (need > m->cap) {
    MPI_Request *r = realloc(m->reqs, (size_t)need * sizeof *r);
    if (!r) return ctx ? pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "mpi: out of host memory for requests") : PATTN_ERR_OUT_OF_MEMORY;
    m->reqs = r;
    m->cap = need;
  }
  /* device buffers handed to MPI directly: MPI reads and writes them outside the context's
   * queue, so everything enqueued so far must be done first */
  if (c->device_direct && ctx) {
    pattn_status st = ctx->be->synchronize(ctx);
    if (st != PATTN_OK) return st;
  }
  for (int i = 0; i < n; i++) {
    for (size_t done = 0; done < x[i].bytes; done += MSG_MAX) {
      size_t len = x[i].bytes - done < MSG_MAX ? x[i].bytes - done : MSG_MAX;
      char *p = (char *)x[i].ptr + done;
      int rc = x[i].dir == PATTN_COMM_SEND ? MPI_Isend(p, (int)len, MPI_BYTE, x[i].peer, TAG, m->comm, &m->reqs[m->nreq])
                                           : MPI_Irecv(p, (int)len, MPI_BYTE, x[i].peer, TAG, m->comm, &m->reqs[m->nreq]);
      if (rc != MPI_SUCCESS) {
        /* what was posted must still complete before its buffers go away */
        MPI_Waitall(m->nreq, m->reqs, MPI_STATUSES_IGNORE);
        m->nreq = 0;
        return mpi_fail(c, ctx, rc, x[i].dir == PATTN_COMM_SEND ? "MPI_Isend" : "MPI_Irecv");
      }
      m->nreq++;
    }
  }
  return PATTN_OK;
}

static pattn_status mpi_wait(pattn_comm *c, pattn_context *ctx) {
  mpi_impl *m = c->impl;
  int n = m->nreq;
  m->nreq = 0;
  if (!n) return PATTN_OK;
  int rc = MPI_Waitall(n, m->reqs, MPI_STATUSES_IGNORE);
  return rc == MPI_SUCCESS ? PATTN_OK : mpi_fail(c, ctx, rc, "MPI_Waitall");
}

static pattn_status mpi_allreduce_max(pattn_comm *c, pattn_context *ctx, int64_t *vals, int n) {
  mpi_impl *m = c->impl;
  int rc = MPI_Allreduce(MPI_IN_PLACE, vals, n, MPI_INT64_T, MPI_MAX, m->comm);
  return rc == MPI_SUCCESS ? PATTN_OK : mpi_fail(c, ctx, rc, "MPI_Allreduce");
}

static void mpi_destroy(pattn_comm *c) {
  mpi_impl *m = c->impl;
  if (m) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      if (m->nreq) MPI_Waitall(m->nreq, m->reqs, MPI_STATUSES_IGNORE);
      if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
    }
    free(m->reqs);
    free(m);
  }
  free(c);
}

static const pattn_comm_ops mpi_ops = {mpi_start, mpi_wait, mpi_allreduce_max, mpi_destroy};

/* Which buffers MPI gets: the cpu backend's are host memory, so they go to MPI as they are;
 * cuda device pointers go directly only with a CUDA-aware MPI; everything else (OpenCL
 * cl_mem) is staged through host memory by the core. PATTN_MPI_DIRECT=0 forces staging (a
 * library that claims CUDA support but crashes; the tests use it to cover staging on cpu). */
static int direct_buffers(const pattn_context *ctx) {
  const char *env = getenv("PATTN_MPI_DIRECT");
  if (env && !strcmp(env, "0")) return 0;
  if (!strcmp(ctx->be->name, "cpu")) return 1;
  if (strcmp(ctx->be->name, "cuda")) return 0;
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#else
  return 0;
#endif
}

pattn_status pattn_comm_create_mpi(pattn_context *ctx, MPI_Comm comm, pattn_comm **out) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st != PATTN_OK) return st;
  if (!out) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "comm_create_mpi: out is NULL");
  *out = NULL;
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  if (!inited || finalized)
    return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "comm_create_mpi: MPI is %s", inited ? "finalized" : "not initialised");
  if (comm == MPI_COMM_NULL) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "comm_create_mpi: comm is MPI_COMM_NULL");

  pattn_comm *c = calloc(1, sizeof *c);
  mpi_impl *m = calloc(1, sizeof *m);
  if (!c || !m) {
    free(c);
    free(m);
    return pattn__error(ctx, PATTN_ERR_OUT_OF_MEMORY, "comm_create_mpi: out of host memory");
  }
  m->comm = MPI_COMM_NULL;
  c->ops = &mpi_ops;
  c->impl = m;
  c->ctx = ctx;
  c->transport = "mpi";
  int rc = MPI_Comm_dup(comm, &m->comm);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(m->comm, &c->rank);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_size(m->comm, &c->size);
  if (rc != MPI_SUCCESS) {
    st = mpi_fail(c, ctx, rc, "MPI_Comm_dup");
    mpi_destroy(c);
    return st;
  }
  c->device_direct = direct_buffers(ctx);
  *out = c;
  return PATTN_OK;
}

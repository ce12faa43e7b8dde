/* Communicators for distributed rings (SPEC.md section 3): a small vtable that the core's
 * distributed algorithms (ops_ring_dist.c) drive, implemented over MPI (comm_mpi.c, inside
 * libpattn) and over a backend's native library (NCCL in the CUDA module, reached through
 * pattn_backend.comm_create_native so that libpattn links no GPU library).
 *
 * Ordering contract, whatever the transport:
 *  - start() posts every transfer of a batch and returns without waiting for them. A send
 *    reads data that operations enqueued on the context before start() wrote.
 *  - wait() completes the batch: operations enqueued on the context after wait() returns see
 *    the received data, and the send buffers may be overwritten by them.
 *  - device_direct: the buffers are backend buffers (device pointers, with the byte offset
 *    already added); otherwise they are host memory and the core stages through
 *    buf_read/buf_write.
 * Every rank of the comm calls the same sequence of start/wait/allreduce (the core keeps it
 * in lockstep), and the transfers of one batch between two ranks are matched in the order
 * they were posted. */
#ifndef PATTN_COMM_H
#define PATTN_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "pattn/pattn.h"

#define PATTN_COMM_ERROR_LEN 512

typedef enum pattn_comm_dir { PATTN_COMM_SEND = 0, PATTN_COMM_RECV = 1 } pattn_comm_dir;

/* One point-to-point transfer of a batch. */
typedef struct pattn_comm_xfer {
  pattn_comm_dir dir;
  int            peer;  /* rank to send to / receive from */
  void          *ptr;   /* host memory, or a device pointer when device_direct */
  size_t         bytes;
} pattn_comm_xfer;

typedef struct pattn_comm_ops {
  /* Post the batch x[0..n). A failure is PATTN_ERR_COMM with the transport's message in
   * c->error (the caller copies it onto its context). At most one batch is in flight. */
  pattn_status (*start)(pattn_comm *c, pattn_context *ctx, const pattn_comm_xfer *x, int n);
  pattn_status (*wait)(pattn_comm *c, pattn_context *ctx);
  /* In place, element-wise maximum over all ranks of vals[0..n) (host memory). The core
   * agrees on statuses and argument hashes with it; the minimum is the maximum of the
   * negations. Blocking. */
  pattn_status (*allreduce_max)(pattn_comm *c, pattn_context *ctx, int64_t *vals, int n);
  /* Release the transport's resources (not the caller's handle) and free c. */
  void (*destroy)(pattn_comm *c);
} pattn_comm_ops;

struct pattn_comm {
  const pattn_comm_ops *ops;
  pattn_context        *ctx;           /* the context it was made for: only that one may use it */
  int                   rank, size;
  int                   device_direct; /* transfers take backend buffers, no host staging */
  const char           *transport;     /* "mpi", "nccl": for messages */
  char                  error[PATTN_COMM_ERROR_LEN]; /* the transport's message of the last failure */
  void                 *impl;          /* the transport's own state */
};

/* The distributed operators (ops_ring_dist.c), called by the public entry points when a
 * comm is given; they validate their arguments themselves (collectively). */
pattn_status pattn__ring_attention_dist(pattn_context *ctx, const pattn_ring_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                        const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out, pattn_tensor *lse);
pattn_status pattn__ring_dilated_dist(pattn_context *ctx, const pattn_dilated_desc *desc, pattn_comm *comm, const pattn_tensor *q,
                                      const pattn_tensor *k, const pattn_tensor *v, pattn_tensor *out);

/* ---- helpers the distributed operators share (ops_ring_dist.c) ---- */
/* FNV-1a step over the 8 bytes of x: hashes of shapes and options. */
uint64_t pattn__fnv(uint64_t h, int64_t x);
/* ndim, dtype and shape of t (NULL allowed) into h. */
uint64_t pattn__hash_tensor(uint64_t h, const pattn_tensor *t);
/* Collective verdict before the first transfer: every rank passes its local status
 * (validation and allocation) and a hash of what must match; all get PATTN_OK, or all fail
 * (this rank's own status, or INVALID_ARGUMENT naming the disagreement). */
pattn_status pattn__comm_agree(pattn_context *ctx, pattn_comm *comm, const char *op, pattn_status local, uint64_t hash);
/* comm must belong to ctx. */
pattn_status pattn__comm_check_ctx(pattn_context *ctx, const char *op, const pattn_comm *comm);
/* Host staging buffers for comms that cannot take backend buffers. */
typedef struct pattn__stage {
  void  *host[2]; /* send / receive sides, swapped by the ring */
  size_t bytes;
} pattn__stage;
pattn_status pattn__stage_alloc(pattn_context *ctx, pattn__stage *s, size_t bytes, int nbuf);
void         pattn__stage_free(pattn__stage *s);
/* What a device-direct transfer gets: the tensor's buffer address plus a byte offset. */
void *pattn__buf_ptr(const pattn_tensor *t, size_t byte_offset);

#endif /* PATTN_COMM_H */

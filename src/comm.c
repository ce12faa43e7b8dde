/* Communicator handles shared by every transport: destruction, and the NCCL constructor,
 * which only forwards to the context's backend (the CUDA module implements it), so that
 * libpattn itself links neither NCCL nor CUDA. */
#include "comm.h"
#include "internal.h"

/* pattn_nccl.h declares this with ncclComm_t, which NCCL defines as struct ncclComm *; the
 * struct stays incomplete here. */
struct ncclComm;
PATTN_API pattn_status pattn_comm_create_nccl(pattn_context *ctx, struct ncclComm *comm, pattn_comm **out);

pattn_status pattn_comm_create_nccl(pattn_context *ctx, struct ncclComm *comm, pattn_comm **out) {
  pattn_status st = pattn__check_ctx(ctx);
  if (st != PATTN_OK) return st;
  if (!out) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "comm_create_nccl: out is NULL");
  *out = NULL;
  if (!comm) return pattn__error(ctx, PATTN_ERR_INVALID_ARGUMENT, "comm_create_nccl: comm (the ncclComm_t) is NULL");
  if (!ctx->be->comm_create_native)
    return pattn__error(ctx, PATTN_ERR_UNSUPPORTED,
                        "comm_create_nccl: the %s backend has no NCCL communicator (NCCL needs the cuda backend, built with NCCL)",
                        ctx->be->name);
  return ctx->be->comm_create_native(ctx, comm, out);
}

void pattn_comm_destroy(pattn_comm *c) {
  if (c && c->ops && c->ops->destroy) c->ops->destroy(c);
}
